// Command zerotouch runs the Zerotouch provisioning service and its
// operator, device and PKI helper commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zerotouch/zerotouch/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Stdin: os.Stdin})
	stop()
	os.Exit(code)
}
