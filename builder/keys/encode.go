package keys

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/pem"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// RootCopy is the private key as root's copy holds it: parsed from the
// checked bytes and encoded again, so none of the user's text around the
// PEM block (or in the key's comment) reaches root's file (issue 16). The
// encoding is deterministic, so setup stays byte-for-byte idempotent.
func (p Pair) RootCopy() ([]byte, error) {
	raw, err := ssh.ParseRawPrivateKey(p.PrivateBytes)
	if err != nil {
		return nil, err
	}
	var priv ed25519.PrivateKey
	switch k := raw.(type) {
	case *ed25519.PrivateKey:
		priv = *k
	case ed25519.PrivateKey:
		priv = k
	default:
		return nil, fmt.Errorf("%s is %T, not ed25519", p.PrivatePath, raw)
	}
	return encodeEd25519(priv, clientComment), nil
}

// encodeEd25519 writes an unencrypted ed25519 key in OpenSSH's format
// (openssh-portable PROTOCOL.key: "openssh-key-v1", cipher and KDF "none",
// one public key, then the private section padded to 8 bytes). x/crypto's
// MarshalPrivateKey draws the two check integers at random; here they come
// from the public key, so the same key always gives the same bytes.
func encodeEd25519(priv ed25519.PrivateKey, comment string) []byte {
	pub := priv.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	check := binary.BigEndian.Uint32(sum[:4])
	private := ssh.Marshal(struct {
		Check1, Check2 uint32
		KeyType        string
		Pub            []byte
		Priv           []byte
		Comment        string
	}{check, check, ssh.KeyAlgoED25519, pub, priv, comment})
	for i := byte(1); len(private)%8 != 0; i++ {
		private = append(private, i)
	}
	pubKey, _ := ssh.NewPublicKey(pub) // an ed25519.PublicKey is always accepted
	body := ssh.Marshal(struct {
		Cipher, KDF, KDFOptions string
		N                       uint32
		PubKey, Private         []byte
	}{"none", "none", "", 1, pubKey.Marshal(), private})
	return pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: append([]byte("openssh-key-v1\x00"), body...)})
}
