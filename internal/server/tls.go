package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/state"
)

// The cluster's own CA signs the certificate each server serves TLS with
// (mounts with transitEncryption ENABLED). The CA is made on the first
// start and kept in etcd; agents receive its certificate over their
// authenticated channel and hand it to the mounts they start.

// caKey holds the CA (certificate and key, PEM) in etcd, so every server
// of a cluster signs with the same CA and a mount trusts any of them.
var caKey = state.CAKey()

func loadOrCreateCA(ctx context.Context, cli *clientv3.Client) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	resp, err := cli.Get(ctx, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(resp.Kvs) == 0 {
		certPEM, keyPEM, err := newCA()
		if err != nil {
			return nil, nil, nil, err
		}
		// The first server to get here makes it; the others read theirs.
		if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(caKey), "=", 0)).
			Then(clientv3.OpPut(caKey, string(certPEM)+string(keyPEM))).Commit(); err != nil {
			return nil, nil, nil, err
		}
		if resp, err = cli.Get(ctx, caKey); err != nil {
			return nil, nil, nil, err
		}
	}
	rest := resp.Kvs[0].Value
	cb, rest := pem.Decode(rest)
	kb, _ := pem.Decode(rest)
	if cb == nil || kb == nil {
		return nil, nil, nil, fmt.Errorf("the CA in etcd is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	return cert, key, pem.EncodeToMemory(cb), err
}

func newCA() ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Berth CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// serverTLS issues the serving certificate for the listen address.
func serverTLS(ctx context.Context, cli *clientv3.Client, listen string) (*tls.Config, []byte, error) {
	ca, caKey, caPEM, err := loadOrCreateCA(ctx, cli)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	host, _, _ := net.SplitHostPort(listen)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "berth-server"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}}
	if h, _ := os.Hostname(); h != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if host != "" && ip == nil {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				tmpl.IPAddresses = append(tmpl.IPAddresses, n.IP)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"}}
	return cfg, caPEM, nil
}

// sniffListener serves TLS and plain HTTP on one port: a connection whose
// first byte is a TLS handshake record is wrapped in TLS. The byte is
// peeked (MSG_PEEK), not read, so a plain connection is handed on as the
// TCP connection itself (sendfile and all); each connection is sniffed in
// its own goroutine, so a silent client holds up no one.
type sniffListener struct {
	net.Listener
	cfg   *tls.Config
	limit *connLimiter
	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newSniffListener(ln net.Listener, cfg *tls.Config, limit *connLimiter) *sniffListener {
	l := &sniffListener{Listener: ln, cfg: cfg, limit: limit, conns: make(chan net.Conn), errs: make(chan error, 1), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *sniffListener) loop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			continue
		}
		if lc := l.limit.admit(tc); lc != nil {
			go l.sniff(lc, tc)
		}
	}
}

func (l *sniffListener) sniff(c net.Conn, tc *net.TCPConn) {
	first, err := peekByte(tc)
	if err != nil {
		c.Close()
		return
	}
	if first == 0x16 {
		c = tls.Server(c, l.cfg)
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func peekByte(tc *net.TCPConn) (byte, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer tc.SetReadDeadline(time.Time{})
	var b [1]byte
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 {
		return 0, io.EOF
	}
	return b[0], nil
}

func (l *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *sniffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}
