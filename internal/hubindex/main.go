// Command hubindex keeps a hub folder's index.json true to its files: the
// sha256 digest of each item's current version, and no rule file left out
// of the index. Rampart's rules (rules/) are a hub folder; after editing a
// rule, run
//
//	go run ./internal/hubindex -dir rules
//
// and `-check` (what the tests do) reports what is stale without writing.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	dir := flag.String("dir", "rules", "hub folder holding index.json")
	check := flag.Bool("check", false, "report stale digests and unlisted files; write nothing")
	flag.Parse()
	problems, err := Sync(*dir, !*check)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hubindex:", err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if *check && len(problems) > 0 {
		os.Exit(1)
	}
}
