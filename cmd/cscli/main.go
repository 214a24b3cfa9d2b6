// Command cscli is Rampart's operator CLI, compatible with CrowdSec's.
package main

import (
	"fmt"
	"os"

	"github.com/rampart-ips/rampart/cscli"
)

func main() {
	if err := cscli.NewRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
