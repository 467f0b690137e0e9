package install

import "testing"

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"path=/data":    "path=/data",
		"path=/a b":     "'path=/a b'",
		"path=/it's":    `'path=/it'\''s'`,
		"path=/$HOME":   "'path=/$HOME'",
		"path=/données": "'path=/données'",
		"":              "''",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
