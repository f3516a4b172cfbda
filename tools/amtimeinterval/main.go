// Command amtimeinterval answers, with Alertmanager's own timeinterval package, whether
// time intervals contain instants: citybrain's differential test
// (tests/integration/test_time_intervals_differential.py) compares playbooks/time_intervals.py
// with it.
//
// Input, one JSON object a line on stdin:
//
//	{"interval": "<YAML of one time interval>", "times": ["2026-03-29T01:30:00Z", ...]}
//
// Output, one JSON object a line on stdout, in the same order:
//
//	{"error": "<why Alertmanager refuses the interval>"}  or  {"contains": [true, ...]}
//
// The interval is read as Alertmanager reads its configuration (go-yaml v2,
// UnmarshalStrict); each time is RFC 3339 and taken as an instant (in UTC, as an
// Alertmanager process on a UTC machine sees time.Now()).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
	"gopkg.in/yaml.v2"
)

type request struct {
	Interval string   `json:"interval"`
	Times    []string `json:"times"`
}

type answer struct {
	Error    string `json:"error,omitempty"`
	Contains []bool `json:"contains,omitempty"`
}

func handle(line []byte) answer {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return answer{Error: "bad request: " + err.Error()}
	}
	var ti timeinterval.TimeInterval
	if err := yaml.UnmarshalStrict([]byte(req.Interval), &ti); err != nil {
		return answer{Error: err.Error()}
	}
	out := make([]bool, 0, len(req.Times))
	for _, s := range req.Times {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return answer{Error: "bad time: " + err.Error()}
		}
		out = append(out, ti.ContainsTime(t.UTC()))
	}
	return answer{Contains: out}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		if err := enc.Encode(handle(in.Bytes())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
