package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// resource is one kind of thing the management API keeps, with what the
// generic get, list and delete commands need of it. A command group for
// a resource is then:
//
//	var widgetTable = table[*pb.Widget]{
//		id:   (*pb.Widget).GetId,                          // what -q prints
//		cols: []column[*pb.Widget]{{"ID", (*pb.Widget).GetId}, {"SIZE", ...}},
//	}
//
//	func widgetCmd(env Env) *cobra.Command {
//		r := resource[*pb.Widget]{noun: "widget", arg: "ID", table: widgetTable,
//			get:    func(ctx, cc, id) { return pb.NewWidgetServiceClient(cc).GetWidget(ctx, ...) },
//			list:   func(ctx, cc, token) { page, err := ...ListWidgets(...); return page.GetWidgets(), page.GetNextPageToken(), err },
//			listed: func(all []*pb.Widget) proto.Message { return &pb.ListWidgetsResponse{Widgets: all} },
//			delete: func(ctx, cc, id, etag) error { ... },
//		}
//		return group("widget", "widgets: create, get, list, delete",
//			widgetCreateCmd(env, r), r.getCmd(env), r.listCmd(env), r.deleteCmd(env))
//	}
//
// where widgetCreateCmd is an opCmd with the resource's own flags that
// prints what the server answers with r.show (json by default, as create
// commands print; -q prints only the ID). get and list print a table by
// default, -o json the API's JSON (for a list, the List response holding
// every page), -o yaml the same as YAML.
type resource[T proto.Message] struct {
	noun  string // "CA certificate"
	arg   string // its key on the command line: "NAME", "ID"
	table table[T]
	get   func(ctx context.Context, cc *grpc.ClientConn, id string) (T, error)
	// list fetches one page.
	list func(ctx context.Context, cc *grpc.ClientConn, token string) (items []T, next string, err error)
	// listed is the List response holding all items: what -o json prints.
	listed func(all []T) proto.Message
	delete func(ctx context.Context, cc *grpc.ClientConn, id, etag string) error
}

// key is the argument's name for help: "registration ID".
func (r resource[T]) key() string {
	words := strings.Split(strings.ToLower(r.arg), "_")
	for i, w := range words {
		if w == "id" {
			words[i] = "ID"
		}
	}
	return strings.Join(words, " ")
}

// plural is the noun for a list's help.
func (r resource[T]) plural() string {
	if strings.HasSuffix(r.noun, "y") {
		return strings.TrimSuffix(r.noun, "y") + "ies"
	}
	return r.noun + "s"
}

// writeCmd is a command that changes a resource and prints the server's
// answer (json by default, as before -o; -q prints only its ID): call
// runs with the command's arguments and a connection, after run's own
// checks.
func (r resource[T]) writeCmd(env Env, use, short string, call func(cmd *cobra.Command, args []string, c *conn) (T, error)) *cobra.Command {
	var o *output
	cmd := opCmd(env, use, short, func(cmd *cobra.Command, args []string, c *conn) error {
		item, err := call(cmd, args, c)
		if err != nil {
			return err
		}
		return r.table.one(env.Stdout, o, item)
	})
	o = addOutput(cmd, formatJSON, "the "+r.key())
	return cmd
}

func (r resource[T]) getCmd(env Env) *cobra.Command {
	var o *output
	cmd := opCmd(env, "get "+r.arg, "show a "+r.noun, func(cmd *cobra.Command, args []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		item, err := r.get(cmd.Context(), cc, args[0])
		if err != nil {
			return err
		}
		return r.table.one(env.Stdout, o, item)
	})
	o = addOutput(cmd, formatTable, "the "+r.key())
	return cmd
}

func (r resource[T]) listCmd(env Env) *cobra.Command {
	var o *output
	cmd := opCmd(env, "list", "list the "+r.plural(), func(cmd *cobra.Command, _ []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		all, err := allPages(func(token string) ([]T, string, error) { return r.list(cmd.Context(), cc, token) })
		if err != nil {
			return err
		}
		return r.table.print(env.Stdout, o, r.listed(all), all)
	})
	o = addOutput(cmd, formatTable, "the "+r.key()+"s, one a line")
	return cmd
}

func (r resource[T]) deleteCmd(env Env) *cobra.Command {
	var etag string
	cmd := opCmd(env, "delete "+r.arg, "delete a "+r.noun, func(cmd *cobra.Command, args []string, c *conn) error {
		cc, err := c.dial()
		if err != nil {
			return err
		}
		return r.delete(cmd.Context(), cc, args[0], etag)
	})
	cmd.Flags().StringVar(&etag, "etag", "", fmt.Sprintf("act only if the %s's etag is this", r.noun))
	return cmd
}

// allPages fetches every page of a List call.
func allPages[T any](fetch func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	for token := ""; ; {
		items, next, err := fetch(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}
