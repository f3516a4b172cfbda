// amroute answers, with Alertmanager 0.25's own code, where alerts go under a
// configuration: the routes each alert takes (dispatch.NewRoute, Route.Match) with their
// resolved options and the alert's group labels, whether each route's notifications are
// held at given instants (notify.TimeMuteStage, TimeActiveStage), whether an alert is
// inhibited by the others (inhibit.Inhibitor over a mem provider) and which silences
// mute it (silence.Silences, Silencer). One JSON request per line on stdin, one JSON
// answer per line on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

type apiMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

type silenceReq struct {
	Matchers []apiMatcher `json:"matchers"`
	StartsIn float64      `json:"starts_in"` // seconds from now
	EndsIn   float64      `json:"ends_in"`
}

type request struct {
	Config   string              `json:"config"`
	Alerts   []map[string]string `json:"alerts"`
	Instants []int64             `json:"instants"`
	Silences []silenceReq        `json:"silences"`
}

type routeOut struct {
	ID             string            `json:"id"`
	Receiver       string            `json:"receiver"`
	GroupBy        []string          `json:"group_by"`
	GroupByAll     bool              `json:"group_by_all"`
	GroupWait      float64           `json:"group_wait"`
	GroupInterval  float64           `json:"group_interval"`
	RepeatInterval float64           `json:"repeat_interval"`
	Key            string            `json:"key"`
	GroupLabels    map[string]string `json:"group_labels"`
	Held           []bool            `json:"held"`
}

type alertOut struct {
	Routes    []routeOut `json:"routes"`
	Inhibited bool       `json:"inhibited"`
	Silenced  []int      `json:"silenced"`
}

type answer struct {
	Error  string     `json:"error,omitempty"`
	Alerts []alertOut `json:"alerts,omitempty"`
	// Every route's id and Route.Key() (its matchers as Alertmanager read them), in
	// the tree's order: what a route holds whether or not an alert takes it (t157).
	RouteKeys     [][2]string `json:"route_keys,omitempty"`
	SilenceErrors []string    `json:"silence_errors,omitempty"`
}

func labelSet(labels map[string]string) model.LabelSet {
	// Alertmanager's API drops a label with an empty value.
	ls := model.LabelSet{}
	for k, v := range labels {
		if v != "" {
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
	}
	return ls
}

func held(ctx context.Context, route *dispatch.Route, times map[string][]timeinterval.TimeInterval, now time.Time) bool {
	ctx = notify.WithNow(ctx, now)
	ctx = notify.WithMuteTimeIntervals(ctx, route.RouteOpts.MuteTimeIntervals)
	ctx = notify.WithActiveTimeIntervals(ctx, route.RouteOpts.ActiveTimeIntervals)
	alert := &types.Alert{}
	logger := log.NewNopLogger()
	_, kept, err := notify.NewTimeMuteStage(times).Exec(ctx, logger, alert)
	if err != nil {
		panic(err)
	}
	if len(kept) == 0 {
		return true
	}
	_, kept, err = notify.NewTimeActiveStage(times).Exec(ctx, logger, alert)
	if err != nil {
		panic(err)
	}
	return len(kept) == 0
}

// inhibitedBy is inhibit.Inhibitor.Mutes over a settled source cache: whether a rule
// whose target side lset matches has a source alert among all with lset's values of its
// equal labels (one matching both sides does not count when lset does too).
func inhibitedBy(rules []*config.InhibitRule, lset model.LabelSet, all []model.LabelSet) bool {
	for _, cr := range rules {
		r := inhibit.NewInhibitRule(cr)
		if !r.TargetMatchers.Matches(lset) {
			continue
		}
		twoSided := r.SourceMatchers.Matches(lset)
	Outer:
		for _, a := range all {
			if !r.SourceMatchers.Matches(a) {
				continue
			}
			for n := range r.Equal {
				if a[n] != lset[n] {
					continue Outer
				}
			}
			if twoSided && r.TargetMatchers.Matches(a) {
				continue
			}
			return true
		}
	}
	return false
}

func serve(req request) (ans answer) {
	// go-yaml v2 built with a newer Go than Alertmanager 0.25's panics (a nil pointer)
	// where amtool 0.25 refuses a file (t157: `match_re: {kind: '~'}`, a quoted "~"
	// go-yaml v2 takes for null): answered as a refusal, which the tests check against
	// amtool check-config, rather than ending the run.
	defer func() {
		if p := recover(); p != nil {
			ans = answer{Error: fmt.Sprintf("config.Load panicked: %v", p)}
		}
	}()
	cfg, err := config.Load(req.Config)
	if err != nil {
		return answer{Error: err.Error()}
	}
	times := map[string][]timeinterval.TimeInterval{}
	for _, ti := range cfg.MuteTimeIntervals {
		times[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range cfg.TimeIntervals {
		times[ti.Name] = ti.TimeIntervals
	}
	root := dispatch.NewRoute(cfg.Route, nil)
	// Each route's place in the tree, as citybrain names it: root, root.0, root.0.1, ...
	ids := map[*dispatch.Route]string{}
	var walk func(r *dispatch.Route, id string)
	var routeKeys [][2]string
	walk = func(r *dispatch.Route, id string) {
		ids[r] = id
		routeKeys = append(routeKeys, [2]string{id, r.Key()})
		for i, c := range r.Routes {
			walk(c, fmt.Sprintf("%s.%d", id, i))
		}
	}
	walk(root, "root")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	marker := types.NewMarker(prometheus.NewRegistry())
	provider, err := mem.NewAlerts(ctx, marker, time.Hour, nil, log.NewNopLogger(), nil)
	if err != nil {
		panic(err)
	}
	defer provider.Close()
	now := time.Now()
	sets := make([]model.LabelSet, len(req.Alerts))
	for i, labels := range req.Alerts {
		sets[i] = labelSet(labels)
		err := provider.Put(&types.Alert{Alert: model.Alert{
			Labels:   sets[i],
			StartsAt: now.Add(-time.Minute),
			EndsAt:   now.Add(time.Hour),
		}, UpdatedAt: now})
		if err != nil {
			panic(err)
		}
	}
	inhibitor := inhibit.NewInhibitor(provider, cfg.InhibitRules, marker, log.NewNopLogger())
	go inhibitor.Run()
	defer inhibitor.Stop()
	// The inhibitor reads the provider's alerts on its own goroutine: wait until its
	// answers are those its rules give over every alert (the same walk as its hasEqual,
	// over the rules' exported matchers), 10 s at most; its own answers are the ones
	// reported, so a wait cut short shows as a disagreement, never hides one.
	inhibited := make([]bool, len(sets))
	if len(cfg.InhibitRules) > 0 {
		expected := make([]bool, len(sets))
		for i, ls := range sets {
			expected[i] = inhibitedBy(cfg.InhibitRules, ls, sets)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			same := true
			for i, ls := range sets {
				inhibited[i] = inhibitor.Mutes(ls)
				same = same && inhibited[i] == expected[i]
			}
			if same || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	sils, err := silence.New(silence.Options{})
	if err != nil {
		panic(err)
	}
	var silenceErrors []string
	silenceIndex := map[string]int{}
	for i, s := range req.Silences {
		sil := &silencepb.Silence{
			StartsAt:  now.Add(time.Duration(s.StartsIn * float64(time.Second))),
			EndsAt:    now.Add(time.Duration(s.EndsIn * float64(time.Second))),
			CreatedBy: "t",
			Comment:   "c",
		}
		for _, m := range s.Matchers {
			t := silencepb.Matcher_EQUAL
			switch {
			case m.IsRegex && m.IsEqual:
				t = silencepb.Matcher_REGEXP
			case m.IsRegex:
				t = silencepb.Matcher_NOT_REGEXP
			case !m.IsEqual:
				t = silencepb.Matcher_NOT_EQUAL
			}
			sil.Matchers = append(sil.Matchers, &silencepb.Matcher{Type: t, Name: m.Name, Pattern: m.Value})
		}
		id, err := sils.Set(sil)
		if err != nil {
			silenceErrors = append(silenceErrors, err.Error())
			continue
		}
		silenceErrors = append(silenceErrors, "")
		silenceIndex[id] = i
	}
	silencer := silence.NewSilencer(sils, marker, log.NewNopLogger())
	out := make([]alertOut, len(sets))
	for i, ls := range sets {
		a := alertOut{Inhibited: inhibited[i], Silenced: []int{}}
		if silencer.Mutes(ls) {
			active, _, _, _ := marker.Silenced(ls.Fingerprint())
			for _, id := range active {
				a.Silenced = append(a.Silenced, silenceIndex[id])
			}
			sort.Ints(a.Silenced)
		}
		for _, r := range root.Match(ls) {
			o := routeOut{
				ID:             ids[r],
				Receiver:       r.RouteOpts.Receiver,
				GroupBy:        []string{},
				GroupByAll:     r.RouteOpts.GroupByAll,
				GroupWait:      r.RouteOpts.GroupWait.Seconds(),
				GroupInterval:  r.RouteOpts.GroupInterval.Seconds(),
				RepeatInterval: r.RouteOpts.RepeatInterval.Seconds(),
				Key:            r.Key(),
				GroupLabels:    map[string]string{},
				Held:           []bool{},
			}
			for ln := range r.RouteOpts.GroupBy {
				o.GroupBy = append(o.GroupBy, string(ln))
			}
			sort.Strings(o.GroupBy)
			for ln, lv := range ls {
				if _, ok := r.RouteOpts.GroupBy[ln]; ok || r.RouteOpts.GroupByAll {
					o.GroupLabels[string(ln)] = string(lv)
				}
			}
			for _, at := range req.Instants {
				o.Held = append(o.Held, held(ctx, r, times, time.Unix(at, 0).UTC()))
			}
			a.Routes = append(a.Routes, o)
		}
		out[i] = a
	}
	return answer{Alerts: out, SilenceErrors: silenceErrors, RouteKeys: routeKeys}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<20), 64<<20)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := enc.Encode(serve(req)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
}
