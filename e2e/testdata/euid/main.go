// Command euid prints the effective uid and gid it runs with: the e2e
// suite's probe of whether a set-uid bit takes effect.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("euid=%d egid=%d\n", os.Geteuid(), os.Getegid())
}
