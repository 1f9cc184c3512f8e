package doctor

import (
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/lifecycle"
)

// doctor shows the store in use beside the disk taken on the Mac and
// suggests `gc --compact` when the difference is worth a copy.
func TestStoreDiskCheckSuggestsCompact(t *testing.T) {
	c := StoreDiskCheck(lifecycle.Usage{DiskBytes: 60 << 30, UsedBytes: 12 << 30}, false)
	if c.Result != Warn || !strings.Contains(c.Fix, "wrapix-builder gc --compact") ||
		!strings.Contains(c.Detail, "12.0 GiB in use, 60.0 GiB disk taken") {
		t.Errorf("%+v", c)
	}
	c = StoreDiskCheck(lifecycle.Usage{DiskBytes: 13 << 30, UsedBytes: 12 << 30}, false)
	if c.Result != OK || c.Fix != "" {
		t.Errorf("%+v", c)
	}
	c = StoreDiskCheck(lifecycle.Usage{DiskBytes: 60 << 30, UsedBytes: -1}, false)
	if c.Result != OK || !strings.Contains(c.Detail, "measured while the builder runs") {
		t.Errorf("%+v", c)
	}
	c = StoreDiskCheck(lifecycle.Usage{DiskBytes: 60 << 30, UsedBytes: 1 << 30}, true)
	if c.Result != Warn || !strings.Contains(c.Detail, "interrupted") {
		t.Errorf("%+v", c)
	}
}
