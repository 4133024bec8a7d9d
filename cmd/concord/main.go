package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

const mainUsage = `Usage: concord <command> [flags]

Commands:
  peer    run a Concord peer (HTTP API, REPL on a terminal)
  id      print the peer ID of a data directory
  bench   run the end-to-end benchmarks
  help    show this help

Run "concord <command> --help" for a command's flags.
Exit codes: 0 clean shutdown, 1 runtime error, 2 usage error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "concord: missing command\n\n"+mainUsage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "peer":
		err = runPeer(args[1:], stdin, stdout, stderr)
	case "id":
		err = runID(args[1:], stdout, stderr)
	case "bench":
		err = runBench(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, mainUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "concord: unknown command %q\n\n%s", args[0], mainUsage)
		return exitUsage
	}
	return exitCode(err, stderr)
}

// usageError is a bad command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// errHelp is returned after --help was printed: exit code 0.
var errHelp = errors.New("help requested")

func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		// The command printed its usage already.
		return exitUsage
	default:
		fmt.Fprintf(stderr, "concord: %v\n", err)
		return exitRuntime
	}
}
