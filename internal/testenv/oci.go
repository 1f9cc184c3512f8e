package testenv

import (
	"archive/tar"
	"os"
	"path/filepath"
	"testing"
)

// OCIArchive writes a minimal OCI image-layout tar whose one manifest is
// named ref, as `container image load` accepts (the stand-in reads only
// oci-layout and index.json).
func OCIArchive(t testing.TB, ref string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range []struct{ name, body string }{
		{"oci-layout", `{"imageLayoutVersion":"1.0.0"}`},
		{"index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
			`"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2,` +
			`"annotations":{"org.opencontainers.image.ref.name":"` + ref + `"}}]}`},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}
