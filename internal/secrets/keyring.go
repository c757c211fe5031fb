// Package secrets serves the minimum of AWS Secrets Manager and SSM
// Parameter Store that ECS users rely on, and resolves container
// definitions' secrets and registry credentials for agents.
//
// Values are sealed (AES-256-GCM) with the cluster's secrets key before
// they reach etcd. The key lives in a file beside each server's data
// (never in etcd); etcd holds only its id, so a server started with a
// different key refuses to start instead of failing to read secrets. What
// this protects against: a copy of etcd's data (a snapshot, a backup, an
// external etcd's disks or its operators) reveals no secret value. What it
// does not: anyone who can read a server's key file and etcd, or who holds
// the cluster's API credentials, can read every secret.
package secrets

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berth-project/berth/internal/state"
)

// KeyFile is the secrets key's file name in a server's data directory.
const KeyFile = "secrets.key"

// Keyring seals and opens values with the cluster's secrets key.
type Keyring struct {
	aead cipher.AEAD
	id   string
}

// NewKeyring makes a keyring of a 32-byte key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("berth secrets key id\x00"), key...))
	return &Keyring{aead: aead, id: hex.EncodeToString(sum[:8])}, nil
}

// ID names the key without revealing it.
func (k *Keyring) ID() string { return k.id }

// Seal encrypts plain, bound to context (the record it belongs to), so a
// sealed value moved to another record does not open.
func (k *Keyring) Seal(context string, plain []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plain, []byte(context))
}

// Open decrypts what Seal made for the same context.
func (k *Keyring) Open(context string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value is too short")
	}
	return k.aead.Open(nil, sealed[:n], sealed[n:], []byte(context))
}

// MissingKeyError: the cluster has a secrets key and this server has none
// (a server of an external etcd whose key file was not copied). Such a
// server runs without Secrets Manager, SSM and FSx, and says why.
type MissingKeyError struct{ Path, ID string }

func (e *MissingKeyError) Error() string {
	return fmt.Sprintf("this cluster's secrets are sealed with key %s, and this server has no key at %s: copy %s from another server of the cluster there and restart it", e.ID, e.Path, KeyFile)
}

// ReadKeyFile reads a key file: 64 hex digits.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%s is not a secrets key (64 hex digits)", path)
	}
	return key, nil
}

// WriteKeyFile writes key to path (mode 0600), refusing to replace a file.
func WriteKeyFile(path string, key []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadKeyring opens the key at path for the cluster behind cli. The first
// server of a cluster makes the key; any other must be given the same one
// (servers that join as members receive it; with an external etcd, copy
// the file). A key that is not the cluster's is refused.
func LoadKeyring(ctx context.Context, cli *clientv3.Client, path string) (*Keyring, error) {
	idKey := state.SecretsKeyIDKey()
	got, err := cli.Get(ctx, idKey)
	if err != nil {
		return nil, err
	}
	key, err := ReadKeyFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && len(got.Kvs) > 0:
		return nil, &MissingKeyError{Path: path, ID: string(got.Kvs[0].Value)}
	case errors.Is(err, os.ErrNotExist):
		key = make([]byte, 32)
		rand.Read(key)
		if err := WriteKeyFile(path, key); err != nil {
			return nil, fmt.Errorf("secrets key: %w", err)
		}
	case err != nil:
		return nil, err
	}
	k, err := NewKeyring(key)
	if err != nil {
		return nil, err
	}
	if len(got.Kvs) == 0 {
		resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(idKey), "=", 0)).
			Then(clientv3.OpPut(idKey, k.id)).Else(clientv3.OpGet(idKey)).Commit()
		if err != nil {
			return nil, err
		}
		if !resp.Succeeded {
			got = (*clientv3.GetResponse)(resp.Responses[0].GetResponseRange())
		}
	}
	if len(got.Kvs) > 0 && !bytes.Equal(got.Kvs[0].Value, []byte(k.id)) {
		return nil, fmt.Errorf("the secrets key at %s (id %s) is not this cluster's (id %s): use the %s of the cluster's other servers", path, k.id, got.Kvs[0].Value, KeyFile)
	}
	return k, nil
}
