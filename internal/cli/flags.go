package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// choiceValue is a flag that takes one of a few values: anything else is
// a usage error while flags are parsed, before anything reaches a server.
type choiceValue struct {
	p       *string
	allowed []string
}

func (c *choiceValue) String() string { return *c.p }
func (c *choiceValue) Type() string   { return "string" }

func (c *choiceValue) Set(v string) error {
	if !slices.Contains(c.allowed, v) {
		var want []string
		for _, a := range c.allowed {
			if a == "" {
				a = `""`
			}
			want = append(want, a)
		}
		return fmt.Errorf("%q is not %s", v, strings.Join(want, ", "))
	}
	*c.p = v
	return nil
}

// choiceVar defines a flag taking one of allowed, with shell completion
// of them.
func choiceVar(cmd *cobra.Command, p *string, name, def, usage string, allowed ...string) {
	*p = def
	cmd.Flags().Var(&choiceValue{p: p, allowed: allowed}, name, usage)
	var shown []string
	for _, a := range allowed {
		if a != "" {
			shown = append(shown, a)
		}
	}
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(shown, cobra.ShellCompDirectiveNoFileComp))
}

// choice is choiceVar for a new string.
func choice(cmd *cobra.Command, name, def, usage string, allowed ...string) *string {
	p := new(string)
	choiceVar(cmd, p, name, def, usage, allowed...)
	return p
}
