package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/agent"
	"github.com/wrapix/wrapix-builder/builder/setup"
)

// Issue 18 point 6: the cask had no `uninstall launchctl:` (the serve agent
// kept running a deleted binary), zapped org.wrapix.builder.plist but not
// the serve agent's plist, and said nothing about /etc/nix still sending
// builds to a builder that is gone. The template is read stanza by stanza;
// the names come from the code that writes them.
func TestCaskUninstallLeavesAMacThatBuildsLocally(t *testing.T) {
	data, err := os.ReadFile("wrapix-builder.rb.in")
	if err != nil {
		t.Fatal(err)
	}
	cask := string(data)
	one := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(cask)
		if m == nil {
			t.Errorf("cask has no %s", re)
			return ""
		}
		return m[1]
	}
	if got := one(`(?m)^  uninstall launchctl: "([^"]+)"`); got != agent.Label {
		t.Errorf("uninstall launchctl: %q, want the serve agent %q", got, agent.Label)
	}
	if got := one(`(?m)^\s+quit:\s+"([^"]+)"`); got != agent.BundleID {
		t.Errorf("uninstall quit: %q, want the app %q", got, agent.BundleID)
	}
	// The postflight names setup's journal and the command that reverses it.
	post := one(`(?s)\n  uninstall_postflight do\n(.*?)\n  end\n`)
	if !strings.Contains(post, `File.exist?("`+setup.JournalPath+`")`) || !strings.Contains(post, "sudo wrapix-builder setup --undo") {
		t.Errorf("uninstall_postflight does not check %s and name setup --undo:\n%s", setup.JournalPath, post)
	}
	var zap []string
	for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(one(`(?s)\n  zap trash: \[\n(.*?)\n  \]\n`), -1) {
		zap = append(zap, m[1])
	}
	for _, want := range []string{
		"~/" + filepath.Join("Library/LaunchAgents", agent.Label+".plist"), // agent.Path
		"~/Library/LaunchAgents/org.wrapix.builder.plist",                  // app/platform's login item
		"~/.config/wrapix", "~/.local/share/wrapix",
	} {
		if !slices.Contains(zap, want) {
			t.Errorf("zap trash lacks %s: %q", want, zap)
		}
	}
	if agent.Path("~") != "~/Library/LaunchAgents/"+agent.Label+".plist" {
		t.Errorf("agent.Path moved: %s", agent.Path("~"))
	}
	// Ruby blocks balance (no ruby here to parse it).
	opens := len(regexp.MustCompile(`(?m)^\s*(cask .* do|uninstall_postflight do|if .*)$`).FindAllString(cask, -1))
	if ends := len(regexp.MustCompile(`(?m)^\s*end$`).FindAllString(cask, -1)); opens != ends {
		t.Errorf("%d blocks opened, %d ended", opens, ends)
	}
}
