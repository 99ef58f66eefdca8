package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// PromQL as the dashboard writes it, for promqlMetrics.
var (
	promqlAggregators = []string{"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values"}
	promqlFunctions   = []string{"rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "abs", "ceil", "floor", "round",
		"clamp_min", "clamp_max", "absent", "changes", "resets", "vector", "scalar", "time", "sort", "sort_desc", "label_replace",
		"avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time", "predict_linear"}
	// promqlGrouping keywords take a parenthesised list of label names.
	promqlGrouping  = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	promqlBinary    = []string{"and", "or", "unless", "bool", "offset"}
	promqlDuration  = regexp.MustCompile(`^([0-9]+(ms|[smhdwy]))+(:([0-9]+(ms|[smhdwy]))+)?$`)
	promqlMatchOps  = []string{"=", "!=", "=~", "!~"}
	promqlOperators = []string{"==", "!=", "<=", ">=", "=~", "!~", "+", "-", "*", "/", "%", "^", "<", ">", "=", ","}
)

type promqlToken struct {
	kind string // "ident", "number", "string", "duration", "op", or the bracket itself
	text string
}

// promqlLex splits an expression into tokens; a range or subquery
// ("[5m]", "[1h:1m]") is one duration token.
func promqlLex(s string) ([]promqlToken, error) {
	var out []promqlToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, promqlToken{"string", s[i+1 : j]})
			i = j + 1
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated range at %d", i)
			}
			d := strings.TrimSpace(s[i+1 : i+j])
			if !promqlDuration.MatchString(d) {
				return nil, fmt.Errorf("range [%s] is not a duration", d)
			}
			out = append(out, promqlToken{"duration", d})
			i += j + 1
		case strings.IndexByte("(){}", c) >= 0:
			out = append(out, promqlToken{string(c), string(c)})
			i++
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e') {
				j++
			}
			out = append(out, promqlToken{"number", s[i:j]})
			i = j
		case c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == ':' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			out = append(out, promqlToken{"ident", s[i:j]})
			i = j
		default:
			op := ""
			for _, o := range promqlOperators {
				if strings.HasPrefix(s[i:], o) && len(o) > len(op) {
					op = o
				}
			}
			if op == "" {
				return nil, fmt.Errorf("unexpected %q at %d", c, i)
			}
			out = append(out, promqlToken{"op", op})
			i += len(op)
		}
	}
	return out, nil
}

// promqlMetrics returns the metric names a PromQL expression selects. It
// checks what a typo would break: brackets balance, every function and
// aggregation is one PromQL has, label matchers are `label op "value"`,
// grouping clauses list label names, ranges are durations. Every other
// identifier is a metric name.
func promqlMetrics(expr string) ([]string, error) {
	toks, err := promqlLex(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var stack []string // open brackets; "labels" for a grouping clause's
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		next := promqlToken{}
		if i+1 < len(toks) {
			next = toks[i+1]
		}
		inBraces := len(stack) > 0 && stack[len(stack)-1] == "{"
		inLabels := len(stack) > 0 && stack[len(stack)-1] == "labels"
		switch {
		case tk.kind == "(" || tk.kind == "{":
			stack = append(stack, tk.kind)
		case tk.kind == ")" || tk.kind == "}":
			open := map[string]string{")": "(", "}": "{"}[tk.kind]
			if len(stack) == 0 || (stack[len(stack)-1] != open && !(open == "(" && stack[len(stack)-1] == "labels")) {
				return nil, fmt.Errorf("unbalanced %q", tk.text)
			}
			stack = stack[:len(stack)-1]
		case tk.kind == "duration":
			if i == 0 || (toks[i-1].kind != "}" && toks[i-1].kind != "ident" && toks[i-1].kind != ")") {
				return nil, fmt.Errorf("range [%s] follows no selector", tk.text)
			}
		case tk.kind == "ident" && inBraces:
			// label op "value" [,]
			if i+2 >= len(toks) || !slices.Contains(promqlMatchOps, toks[i+1].text) || toks[i+2].kind != "string" {
				return nil, fmt.Errorf("label matcher at %q is not label op \"value\"", tk.text)
			}
			i += 2
		case tk.kind == "ident" && inLabels:
			// a label name of a grouping clause
		case tk.kind == "ident" && slices.Contains(promqlGrouping, tk.text):
			if next.kind != "(" {
				return nil, fmt.Errorf("%s without a label list", tk.text)
			}
			stack = append(stack, "labels")
			i++
		case tk.kind == "ident" && slices.Contains(promqlAggregators, tk.text):
			if next.kind != "(" && !slices.Contains(promqlGrouping, next.text) {
				return nil, fmt.Errorf("aggregation %s without its argument", tk.text)
			}
		case tk.kind == "ident" && next.kind == "(":
			if !slices.Contains(promqlFunctions, tk.text) {
				return nil, fmt.Errorf("unknown function %s", tk.text)
			}
		case tk.kind == "ident" && slices.Contains(promqlBinary, tk.text):
		case tk.kind == "ident":
			names = append(names, tk.text)
		case tk.kind == "op" && tk.text == "," && len(stack) == 0:
			return nil, fmt.Errorf("a comma outside brackets")
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return names, nil
}

// TestPromQLMetrics: the dashboard check finds the metrics of valid
// queries and refuses broken ones.
func TestPromQLMetrics(t *testing.T) {
	for expr, want := range map[string]string{
		`up`: "[up]",
		`sum by (outcome) (rate(zerotouch_registrations_total{job=~"$job", outcome!="x"}[5m])) * 60`:                                          "[zerotouch_registrations_total]",
		`histogram_quantile(0.99, sum by (le, transport) (rate(zerotouch_registration_duration_seconds_bucket{outcome="assigned"}[1m:10s])))`: "[zerotouch_registration_duration_seconds_bucket]",
		`max by (cluster, shard) (a_b) / on (shard) group_left (cluster) c_d or vector(0)`:                                                    "[a_b c_d]",
		`count by (version) (zerotouch_build_info{job=~"a\"b"})`:                                                                              "[zerotouch_build_info]",
	} {
		got, err := promqlMetrics(expr)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%s: %v %v, want %s", expr, got, err, want)
		}
	}
	for _, bad := range []string{
		`sum(rate(x[5m])`,
		`rat(x[5m])`,
		`x{job="a"`,
		`x{job=a}`,
		`rate(x[5 minutes])`,
		`sum by outcome (x)`,
		`x)`,
		`x{job="a"}}`,
	} {
		if got, err := promqlMetrics(bad); err == nil {
			t.Errorf("%s accepted: %v", bad, got)
		}
	}
}
