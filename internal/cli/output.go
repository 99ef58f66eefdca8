package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// format is an output format, the value of -o.
type format string

const (
	formatTable format = "table"
	formatJSON  format = "json"
	formatYAML  format = "yaml"
)

var formats = []string{string(formatTable), string(formatJSON), string(formatYAML)}

func (f *format) String() string { return string(*f) }
func (f *format) Type() string   { return "format" }

// Set refuses an unknown format while flags are parsed, before anything
// is sent to the server.
func (f *format) Set(v string) error {
	for _, ok := range formats {
		if v == ok {
			*f = format(v)
			return nil
		}
	}
	return fmt.Errorf("%q is not %s", v, strings.Join(formats, ", "))
}

// output is a command's -o and -q.
type output struct {
	format format
	quiet  bool
}

// addOutput gives cmd -o (def by default: table for reads, json where
// the command printed JSON before) and, unless quietWhat is "", -q,
// which prints only quietWhat.
func addOutput(cmd *cobra.Command, def format, quietWhat string) *output {
	o := &output{format: def}
	cmd.Flags().VarP(&o.format, "output", "o", "output format: table, json (the API's JSON, for scripts) or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
	if quietWhat != "" {
		cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "print only "+quietWhat)
	}
	return o
}

// column is one column of a table.
type column[T any] struct {
	head string
	cell func(T) string
}

// table is how a type prints: its columns for -o table, and id, what -q
// prints of it (the ID, or the one value a script wants).
type table[T any] struct {
	cols []column[T]
	id   func(T) string
}

// print prints a result as o says: msg (the item, or the List response
// holding items) as JSON or YAML; items as table rows or, with -q, one
// ID a line.
func (t table[T]) print(w io.Writer, o *output, msg any, items []T) error {
	if o == nil {
		o = &output{format: formatJSON}
	}
	if o.quiet {
		if t.id == nil {
			return nil
		}
		for _, it := range items {
			if _, err := fmt.Fprintln(w, t.id(it)); err != nil {
				return err
			}
		}
		return nil
	}
	switch o.format {
	case formatJSON:
		return printJSON(w, msg)
	case formatYAML:
		return printYAML(w, msg)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	heads := make([]string, len(t.cols))
	for i, c := range t.cols {
		heads[i] = c.head
	}
	fmt.Fprintln(tw, strings.Join(heads, "\t"))
	for _, it := range items {
		cells := make([]string, len(t.cols))
		for i, c := range t.cols {
			cells[i] = cellText(c.cell(it))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// one prints a single item.
func (t table[T]) one(w io.Writer, o *output, item T) error {
	return t.print(w, o, item, []T{item})
}

// cellText keeps a cell on its line and in its column.
func cellText(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", "").Replace(s)
}

// toJSON is the API's JSON of a message (protojson, as every command
// printed before -o), or encoding/json's of anything else.
func toJSON(v any, multiline bool) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return protojson.MarshalOptions{Multiline: multiline}.Marshal(m)
	}
	if multiline {
		return json.MarshalIndent(v, "", "  ")
	}
	return json.Marshal(v)
}

// printJSON prints v as JSON.
func printJSON(w io.Writer, v any) error {
	b, err := toJSON(v, true)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// printYAML prints v's JSON as YAML, fields in the same order; strings
// that would read as another type stay quoted.
func printYAML(w io.Writer, v any) error {
	b, err := toJSON(v, false)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle drops the flow style and quoting JSON parsed with, so the
// encoder picks YAML's block style (and quotes where it must).
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// when is a timestamp for a table cell: UTC, to the second.
func when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// enum is an enum value for a table cell: "PROVISIONING_STATUS_ENABLED"
// less its prefix, in lower case ("enabled").
func enum(v fmt.Stringer, prefix string) string {
	s := strings.TrimPrefix(v.String(), prefix)
	if strings.HasSuffix(s, "UNSPECIFIED") {
		return ""
	}
	return strings.ToLower(s)
}

// yesNo is a bool for a table cell.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// joined is a list for a table cell.
func joined(items []string) string { return strings.Join(items, ",") }
