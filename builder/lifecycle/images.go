package lifecycle

import (
	"context"
	"strings"

	"github.com/wrapix/wrapix-builder/builder/version"
)

// sameImage tells whether ref, as the runtime reports it (a listing may
// carry the normalized "docker.io/library/…"), names the image want.
func sameImage(ref, want string) bool {
	return ref == want || strings.HasSuffix(ref, "/"+want)
}

// olderBuilderImage tells whether ref is a builder image an older release
// left loaded: our repository with another tag than current's. Digest
// references and other repositories are never ours to delete.
func olderBuilderImage(ref, current string) bool {
	ref = strings.TrimPrefix(ref, "docker.io/library/")
	if strings.Contains(ref, "@") || sameImage(ref, current) {
		return false
	}
	name, tag, ok := strings.Cut(ref, ":")
	return ok && name == version.ImageRepository && tag != "" && !strings.Contains(tag, "/")
}

// dropOlderImages runs after a start with this release's image is ready:
// the images older releases left loaded (a few hundred MB each) are never
// run again, so they go. Only with the default image: whoever configured
// image = … manages images themselves, and that one is never deleted.
// Failing to delete costs disk, not the start: a warning says how to do it.
func (b *Builder) dropOlderImages(ctx context.Context) {
	current := version.Image()
	if b.Config.Image != current {
		return
	}
	refs, err := b.CLI.ImageList(ctx)
	if err != nil {
		b.say("WARNING: cannot list the loaded images to remove older builder images: %v", err)
		return
	}
	var older []string
	for _, r := range refs {
		if olderBuilderImage(r, current) {
			older = append(older, r)
		}
	}
	if len(older) == 0 {
		return
	}
	b.say("a new builder image for %s; the store is kept", version.Version)
	if err := b.CLI.ImageDelete(ctx, older...); err != nil {
		b.say("WARNING: cannot delete the previous builder image %s: %v; fix: `container image delete %s`",
			strings.Join(older, ", "), err, strings.Join(older, " "))
		return
	}
	b.say("deleted the previous builder image %s", strings.Join(older, ", "))
}
