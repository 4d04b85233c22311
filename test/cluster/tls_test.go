package clustertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMutualTLS runs two nodes whose cluster port requires a certificate
// signed by their CA: they form a cluster and serve each other's grains; a
// third node with a certificate from another CA never joins them.
func TestMutualTLS(t *testing.T) {
	skipUnlessLong(t)
	dir := t.TempDir()
	ca, caKey := newCA(t, dir, "ca")
	other, otherKey := newCA(t, dir, "other-ca")
	c := newCluster(t, 3, "ACTIVE_TOKENS=10")
	pair, stranger := c.nodes[:2], c.nodes[2]
	for _, p := range pair {
		cert, key := newLeaf(t, dir, p.name, ca, caKey)
		p.env = append(p.env, "CLUSTER_TLS_CERT="+cert, "CLUSTER_TLS_KEY="+key, "CLUSTER_TLS_CA="+filepath.Join(dir, "ca.pem"))
	}
	cert, key := newLeaf(t, dir, stranger.name, other, otherKey)
	stranger.env = append(stranger.env, "CLUSTER_TLS_CERT="+cert, "CLUSTER_TLS_KEY="+key, "CLUSTER_TLS_CA="+filepath.Join(dir, "other-ca.pem"))
	pairPeers := fmt.Sprintf("CLUSTER_PEERS=127.0.0.1:%d,127.0.0.1:%d", pair[0].clusterPort, pair[1].clusterPort)
	for _, p := range pair {
		p.env = append(p.env, pairPeers)
		p.launch()
	}
	// The stranger looks for the pair only: listing itself too, it would
	// own some grains — the queue manager among them, one time in three —
	// and start alone instead of showing that it cannot reach the pair.
	stranger.env = append(stranger.env, pairPeers)
	for _, p := range pair {
		p.waitReady(60 * time.Second)
	}
	c.waitMembers(2, pair...)
	_, seats := c.concert(pair[0], 6, 100)
	for i := range 4 { // grains on both nodes, reached from both
		uid, tok := c.user(pair, i, 1000)
		c.must(200, pair[(i+1)%2], "POST", "/reservations", tok, map[string]any{"userId": uid, "seatId": seats[i]}, nil)
	}
	t.Logf("the pair served each other's grains over mutual TLS")

	// A node whose certificate another CA signed cannot talk to them: it
	// never reaches the queue manager and gives up at start.
	stranger.launch()
	select {
	case <-stranger.exited:
		t.Logf("the stranger exited: %v", stranger.exitErr)
	case <-time.After(90 * time.Second):
		t.Fatal("the stranger kept running")
	}
	if countInLog(stranger, "authentication handshake failed")+countInLog(pair[0], "authentication handshake failed")+
		countInLog(pair[1], "authentication handshake failed") == 0 {
		t.Error("no TLS handshake failure logged")
	}
	// Once it is gone from the member list, the pair serves everything again.
	c.waitMembers(2, pair...)
	uid, tok := c.user(pair, 9, 1000)
	c.must(200, pair[0], "POST", "/reservations", tok, map[string]any{"userId": uid, "seatId": seats[5]}, nil)
}

func newCA(t *testing.T, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func newLeaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certPath, keyPath string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certPath, "CERTIFICATE", der)
	kder, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
