// Command ammatchers reads matcher entries (one JSON string a line on stdin) and prints,
// one JSON object a line, how Alertmanager 0.27 reads each: with its classic parser
// (pkg/labels, Alertmanager 0.25's grammar), with its UTF-8 parser (matchers/parse, what
// --enable-feature=utf8-strict-mode uses) and in its default fallback mode (matchers/compat).
// citybrain follows 0.25 (as 0.27's default mode does); tests/integration/
// test_utf8_matchers_differential.py uses this to check that citybrain takes every entry
// as the classic parser reads it and warns, naming the matcher and both readings, of each
// the UTF-8 parser reads otherwise (a config written for UTF-8 matchers would else route
// otherwise without a word).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/go-kit/log"
	"github.com/prometheus/alertmanager/matchers/compat"
	"github.com/prometheus/alertmanager/pkg/labels"
)

type matcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

type reading struct {
	Matchers []matcher `json:"matchers"`
	Error    string    `json:"error,omitempty"`
}

func read(ms labels.Matchers, err error) reading {
	if err != nil {
		return reading{Error: err.Error()}
	}
	out := reading{Matchers: []matcher{}}
	for _, m := range ms {
		out.Matchers = append(out.Matchers, matcher{m.Name, m.Type.String(), m.Value})
	}
	return out
}

func main() {
	quiet := log.NewNopLogger()
	fallback, utf8 := compat.FallbackMatchersParser(quiet), compat.UTF8MatchersParser(quiet)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var text string
		if err := json.Unmarshal(in.Bytes(), &text); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = out.Encode(map[string]reading{
			"classic": read(labels.ParseMatchers(text)),
			"utf8":    read(utf8(text, "ammatchers")),
			"default": read(fallback(text, "ammatchers")),
		})
	}
}
