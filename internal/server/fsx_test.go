package server

import "testing"

func TestShareRoot(t *testing.T) {
	for in, want := range map[string]string{
		"share": "/", `\share`: "/", `share\app`: "/app", `\share\app\data`: "/app/data", "/share/app/": "/app", `SHARE\x`: "/x",
	} {
		if got, err := ShareRoot(in); err != nil || got != want {
			t.Errorf("ShareRoot(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", `\`, "data", `other\share`, `share\..\x`, `share\.`} {
		if got, err := ShareRoot(bad); err == nil {
			t.Errorf("ShareRoot(%q) = %q, want an error", bad, got)
		}
	}
}
