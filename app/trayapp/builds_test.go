package trayapp

import (
	"strconv"
	"testing"
)

// The notified set forgets its oldest keys: a long run (or a flood of
// invented builds) does not grow it.
func TestNotifiedSetBounded(t *testing.T) {
	var k keySet
	for i := 0; i < 10*maxNotified; i++ {
		if !k.add(strconv.Itoa(i)) {
			t.Fatalf("key %d refused", i)
		}
	}
	if len(k.has) != maxNotified || len(k.order) != maxNotified {
		t.Fatalf("set holds %d keys (%d in order)", len(k.has), len(k.order))
	}
	if k.add(strconv.Itoa(10*maxNotified - 1)) {
		t.Error("a recent key added twice")
	}
}
