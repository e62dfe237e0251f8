// Command cutover is the command-line client of the Cutover control plane.
package main

import (
	"os"

	"github.com/cutover-dev/cutover/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
