// Package codesig reads the code signature of a Mach-O executable and
// checks that an app bundle is signed as a bundle: its main executable's
// identifier is the bundle's and its Info.plist is bound to the signature
// (issue 17 point 5). macOS drops the notifications of an app whose
// signature does not bind its Info.plist, as a linker's or nixpkgs'
// per-file ad-hoc signature does (identifier: the file name, no Info.plist
// slot).
//
// The format is Apple's (Security framework, libsecurity_codesigning
// codedirectory.h and cs_blobs.h; also Go's cmd/internal/codesign, whose
// signatures the tests read): LC_CODE_SIGNATURE points at a big-endian
// SuperBlob of blobs; the CodeDirectory names the identifier and holds one
// hash per page of the file up to codeLimit, and before them the "special
// slots": -1 Info.plist, -2 requirements, -3 _CodeSignature/CodeResources.
package codesig

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"debug/macho"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"regexp"
)

const (
	lcCodeSignature   = 0x1d
	magicSuperBlob    = 0xfade0cc0
	magicCodeDir      = 0xfade0c02
	slotCodeDirectory = 0
	slotAlternateCD   = 0x1000 // the first alternate CodeDirectory (a second hash type)

	FlagAdhoc        = 0x2
	FlagLinkerSigned = 0x20000

	// Special slots, counted backwards from the code hashes.
	SlotInfoPlist    = 1
	SlotRequirements = 2
	SlotResources    = 3
)

// Directory is one CodeDirectory.
type Directory struct {
	Identifier string
	Flags      uint32
	HashType   uint8 // 1 SHA-1, 2 SHA-256
	PageSize   int
	CodeLimit  uint64
	special    [][]byte // special[i-1] is slot -i
	code       [][]byte
}

// Special is the hash in special slot -i (nil if the directory has none).
func (d *Directory) Special(i int) []byte {
	if i < 1 || i > len(d.special) {
		return nil
	}
	return d.special[i-1]
}

func (d *Directory) newHash() hash.Hash {
	if d.HashType == 1 {
		return sha1.New()
	}
	return sha256.New()
}

// Sum hashes data with the directory's hash type.
func (d *Directory) Sum(data []byte) []byte {
	h := d.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// Signature is what a thin Mach-O carries.
type Signature struct {
	Directories []*Directory // the CodeDirectory, then alternates
}

// ErrUnsigned: the file has no code signature.
var ErrUnsigned = errors.New("no code signature")

// Read parses the signature of the Mach-O at path (thin, or the first
// architecture of a universal file) and checks every code page's hash
// against the file: a file changed after signing (stripped, patched) fails.
func Read(path string) (*Signature, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if ff, err := macho.NewFatFile(bytes.NewReader(data)); err == nil {
		if len(ff.Arches) == 0 {
			return nil, fmt.Errorf("%s: universal file without architectures", path)
		}
		a := ff.Arches[0]
		if uint64(a.Offset)+uint64(a.Size) > uint64(len(data)) {
			return nil, fmt.Errorf("%s: architecture past the end of the file", path)
		}
		data = data[a.Offset : a.Offset+a.Size]
	}
	sig, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sig, nil
}

func parse(file []byte) (*Signature, error) {
	f, err := macho.NewFile(bytes.NewReader(file))
	if err != nil {
		return nil, err
	}
	var off, size uint32
	found := false
	for _, l := range f.Loads {
		raw := l.Raw()
		if len(raw) >= 16 && f.ByteOrder.Uint32(raw) == lcCodeSignature {
			off, size, found = f.ByteOrder.Uint32(raw[8:]), f.ByteOrder.Uint32(raw[12:]), true
		}
	}
	if !found {
		return nil, ErrUnsigned
	}
	if uint64(off)+uint64(size) > uint64(len(file)) {
		return nil, errors.New("code signature past the end of the file")
	}
	blob := file[off : off+size]
	be := binary.BigEndian
	if len(blob) < 12 || be.Uint32(blob) != magicSuperBlob {
		return nil, errors.New("code signature is not a SuperBlob")
	}
	count := be.Uint32(blob[8:])
	if uint64(count)*8+12 > uint64(len(blob)) {
		return nil, errors.New("SuperBlob index past its end")
	}
	sig := &Signature{}
	for i := uint32(0); i < count; i++ {
		typ, at := be.Uint32(blob[12+8*i:]), be.Uint32(blob[16+8*i:])
		if typ != slotCodeDirectory && (typ < slotAlternateCD || typ >= slotAlternateCD+5) {
			continue
		}
		d, err := parseDirectory(blob, at)
		if err != nil {
			return nil, err
		}
		if err := d.checkCode(file); err != nil {
			return nil, err
		}
		sig.Directories = append(sig.Directories, d)
	}
	if len(sig.Directories) == 0 {
		return nil, errors.New("code signature without a CodeDirectory")
	}
	return sig, nil
}

func parseDirectory(blob []byte, at uint32) (*Directory, error) {
	be := binary.BigEndian
	if uint64(at)+44 > uint64(len(blob)) || be.Uint32(blob[at:]) != magicCodeDir {
		return nil, errors.New("bad CodeDirectory")
	}
	length := be.Uint32(blob[at+4:])
	if uint64(at)+uint64(length) > uint64(len(blob)) || length < 44 {
		return nil, errors.New("CodeDirectory past the end of the signature")
	}
	cd := blob[at : at+length]
	version := be.Uint32(cd[8:])
	d := &Directory{Flags: be.Uint32(cd[12:])}
	hashOffset, identOffset := be.Uint32(cd[16:]), be.Uint32(cd[20:])
	nSpecial, nCode := be.Uint32(cd[24:]), be.Uint32(cd[28:])
	d.CodeLimit = uint64(be.Uint32(cd[32:]))
	hashSize := int(cd[36])
	d.HashType = cd[37]
	d.PageSize = 1 << cd[39]
	if version >= 0x20300 && len(cd) >= 64 {
		if l64 := be.Uint64(cd[56:]); l64 != 0 {
			d.CodeLimit = l64
		}
	}
	if (d.HashType != 1 || hashSize != sha1.Size) && (d.HashType != 2 || hashSize != sha256.Size) {
		return nil, fmt.Errorf("CodeDirectory hash type %d (size %d) is not SHA-1 or SHA-256", d.HashType, hashSize)
	}
	end := bytes.IndexByte(cd[min(int(identOffset), len(cd)):], 0)
	if identOffset >= uint32(len(cd)) || end < 0 {
		return nil, errors.New("CodeDirectory identifier out of bounds")
	}
	d.Identifier = string(cd[identOffset : identOffset+uint32(end)])
	first := int64(hashOffset) - int64(nSpecial)*int64(hashSize)
	last := int64(hashOffset) + int64(nCode)*int64(hashSize)
	if first < 0 || last > int64(len(cd)) {
		return nil, errors.New("CodeDirectory hashes out of bounds")
	}
	for i := 1; i <= int(nSpecial); i++ {
		d.special = append(d.special, cd[int(hashOffset)-i*hashSize:int(hashOffset)-(i-1)*hashSize])
	}
	for i := 0; i < int(nCode); i++ {
		d.code = append(d.code, cd[int(hashOffset)+i*hashSize:int(hashOffset)+(i+1)*hashSize])
	}
	return d, nil
}

// checkCode compares each page's hash with the file's bytes.
func (d *Directory) checkCode(file []byte) error {
	if d.CodeLimit > uint64(len(file)) {
		return errors.New("CodeDirectory covers more than the file")
	}
	for i, want := range d.code {
		start := uint64(i) * uint64(d.PageSize)
		end := min(start+uint64(d.PageSize), d.CodeLimit)
		if start >= end || !bytes.Equal(d.Sum(file[start:end]), want) {
			return fmt.Errorf("page %d differs from its signed hash (the file changed after signing)", i)
		}
	}
	return nil
}

// Zero special slots are empty: a hash of all zeros means "not bound".
func empty(h []byte) bool { return h == nil || bytes.Count(h, []byte{0}) == len(h) }

// InfoPlistBound reports whether every CodeDirectory binds info (the
// bundle's Info.plist bytes).
func (s *Signature) InfoPlistBound(info []byte) bool {
	for _, d := range s.Directories {
		if h := d.Special(SlotInfoPlist); empty(h) || !bytes.Equal(h, d.Sum(info)) {
			return false
		}
	}
	return true
}

var plistString = func(key string) *regexp.Regexp {
	return regexp.MustCompile(`<key>` + regexp.QuoteMeta(key) + `</key>\s*<string>([^<]*)</string>`)
}

// CheckBundle checks that the .app at app is signed as a bundle: its main
// executable (CFBundleExecutable) carries a valid signature whose
// identifier is CFBundleIdentifier and which binds Info.plist and, if it
// has one, _CodeSignature/CodeResources. The error says what is wrong.
func CheckBundle(app string) error {
	infoPath := filepath.Join(app, "Contents", "Info.plist")
	info, err := os.ReadFile(infoPath)
	if err != nil {
		return err
	}
	id, exe := plistString("CFBundleIdentifier").FindSubmatch(info), plistString("CFBundleExecutable").FindSubmatch(info)
	if id == nil || exe == nil {
		return fmt.Errorf("%s names no CFBundleIdentifier or CFBundleExecutable", infoPath)
	}
	main := filepath.Join(app, "Contents", "MacOS", string(exe[1]))
	sig, err := Read(main)
	if err != nil {
		return fmt.Errorf("the app is not signed as a bundle: %w", err)
	}
	cd := sig.Directories[0]
	if cd.Identifier != string(id[1]) {
		return fmt.Errorf("the app is not signed as a bundle: %s is signed as %q, not as the bundle %q", main, cd.Identifier, id[1])
	}
	if !sig.InfoPlistBound(info) {
		return fmt.Errorf("the app is not signed as a bundle: the signature of %s does not bind %s", main, infoPath)
	}
	if h := cd.Special(SlotResources); !empty(h) {
		res, err := os.ReadFile(filepath.Join(app, "Contents", "_CodeSignature", "CodeResources"))
		if err != nil || !bytes.Equal(cd.Sum(res), h) {
			return fmt.Errorf("the app's sealed resources (_CodeSignature/CodeResources) do not match its signature")
		}
	}
	return nil
}
