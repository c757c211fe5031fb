package secrets

import (
	"bytes"
	"testing"
)

func TestSealedValuesOpenOnlyInTheirRecord(t *testing.T) {
	k, err := NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.Seal("/berth/v1/secrets/sm/a\x00v1", []byte("value"))
	if bytes.Contains(sealed, []byte("value")) {
		t.Fatal("the sealed form holds the value")
	}
	if got, err := k.Open("/berth/v1/secrets/sm/a\x00v1", sealed); err != nil || string(got) != "value" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := k.Open("/berth/v1/secrets/sm/b\x00v1", sealed); err == nil {
		t.Fatal("a value moved to another record opened")
	}
	other, _ := NewKeyring(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open("/berth/v1/secrets/sm/a\x00v1", sealed); err == nil {
		t.Fatal("another key opened the value")
	}
	if k.ID() == other.ID() {
		t.Fatal("two keys have one id")
	}
	if _, err := NewKeyring([]byte("short")); err == nil {
		t.Fatal("a short key was taken")
	}
}
