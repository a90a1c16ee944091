package wire

import (
	"bytes"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestProtocolDocExamples: every hex example in docs/PROTOCOL.md is one
// whole, valid frame that decodes and re-encodes to the same bytes, and
// every sample frame the encoders produce appears in the document.
func TestProtocolDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("`((?:[0-9a-f]{2} )+[0-9a-f]{2})`")
	found := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(doc), -1) {
		b, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		typ, body, n, err := Parse(b, MaxFrame)
		if err != nil || n != len(b) {
			t.Errorf("example %q: not one whole frame (n=%d): %v", m[1], n, err)
			continue
		}
		v, err := decodeAny(typ, body)
		if err != nil || !bytes.Equal(encodeAny(v), b) {
			t.Errorf("example %q does not round-trip: %v", m[1], err)
		}
		found[string(b)] = true
	}
	for _, s := range samples() {
		if !found[string(s)] {
			t.Errorf("no example in PROTOCOL.md for %q: % x", s[2], s)
		}
	}
}
