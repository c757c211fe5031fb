package jointoken

import (
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	tok := New(strings.Repeat("ab", 32))
	got, err := Parse(tok.String())
	if err != nil || got != tok {
		t.Fatalf("Parse(%q) = %+v, %v", tok.String(), got, err)
	}
	if c, err := ParseCredential(tok.Credential()); err != nil || c.ID != tok.ID || c.Secret != tok.Secret {
		t.Fatalf("ParseCredential: %+v %v", c, err)
	}
	if New("x").Secret == tok.Secret {
		t.Fatal("two tokens share a secret")
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, s := range []string{"", "BERTH1:", "BERTH1:" + fp, "BERTH1:" + fp + ":", "BERTH1:" + fp + ":0123abcd",
		"BERTH1:" + fp + ":0123abcd." + strings.Repeat("f", 31), "BERTH1:" + fp[1:] + ":0123abcd." + strings.Repeat("f", 32),
		"BERTH2:" + fp + ":0123abcd." + strings.Repeat("f", 32), "BERTH1:" + strings.ToUpper(fp) + ":0123abcd." + strings.Repeat("f", 32)} {
		if _, err := Parse(s); err != ErrMalformed {
			t.Errorf("Parse(%q): %v, want ErrMalformed", s, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(New(strings.Repeat("ab", 32)).String())
	f.Add("BERTH1::.")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(tok.String())
		if err != nil || again != tok {
			t.Fatalf("a parsed token does not survive a round trip: %q -> %+v -> %+v %v", s, tok, again, err)
		}
	})
}
