package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/concert/ticketing/actors"
	"github.com/concert/ticketing/booking"
	"github.com/concert/ticketing/cluster"
)

// Membership providers of ClusterConfig.Provider.
const (
	// ProviderLocal places every actor in this process without Proto.Actor's
	// cluster (no remote port): cluster.Local, sharing every actor unchanged.
	ProviderLocal = "local"
	// ProviderSingle makes this node a cluster of one: grains, a remote
	// port on loopback, no peers.
	ProviderSingle = "single"
	// ProviderStatic is a fixed member list (Proto.Actor's automanaged
	// provider): for one machine and small deployments.
	ProviderStatic = "static"
	// ProviderEtcd finds members through etcd.
	ProviderEtcd = "etcd"
)

// ClusterConfig says how a node places its actors and finds its peers.
//
// concertd defaults to ProviderSingle: a node alone is a cluster of one and
// runs the same code path as a member of many (measured at no cost to the
// hold path). The zero value here is ProviderLocal, for programs that start
// several nodes in one process (the in-process tests): Proto.Actor's
// remote.Start sets gRPC's global logger each time, which races with the
// gRPC goroutines of a node already running in the process (-race reports
// it); one node per process, as concertd runs, is unaffected.
type ClusterConfig struct {
	Provider string // ProviderLocal (zero value), ProviderSingle, ProviderStatic or ProviderEtcd
	Name     string // cluster name (default "concert")
	// Host and Port are where the remote (gRPC) port listens; Port 0 picks a
	// free one (not with ProviderStatic, whose peers must know it).
	// Advertised (host:port) is what peers dial, if not Host:Port.
	Host       string
	Port       int
	Advertised string
	// Peers are the members' host:port (cluster ports) for ProviderStatic.
	Peers []string
	// EtcdEndpoints for ProviderEtcd, e.g. http://127.0.0.1:2379.
	EtcdEndpoints []string
	// TLSCert, TLSKey and TLSCA (PEM files) turn on mutual TLS on the remote
	// port: a member presents its certificate and accepts only peers whose
	// certificate the CA signed. All three or none.
	TLSCert, TLSKey, TLSCA string
}

// placement is the router the node owns: cluster.Local or cluster.Grains.
type placement interface {
	cluster.Router
	Stop()
}

// Check reports what is wrong with the cluster settings.
func (c ClusterConfig) Check() error {
	var errs []error
	switch c.Provider {
	case "", ProviderLocal, ProviderSingle:
	case ProviderStatic:
		if c.Port <= 0 {
			errs = append(errs, errors.New("CLUSTER_PORT: the static provider needs a fixed port"))
		}
		if len(c.Peers) == 0 {
			errs = append(errs, errors.New("CLUSTER_PEERS: the static provider needs the member list"))
		}
	case ProviderEtcd:
		if len(c.EtcdEndpoints) == 0 {
			errs = append(errs, errors.New("ETCD_ENDPOINTS: the etcd provider needs at least one endpoint"))
		}
	default:
		errs = append(errs, fmt.Errorf("CLUSTER_PROVIDER: want local, single, static or etcd, got %q", c.Provider))
	}
	for _, p := range c.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("CLUSTER_PEERS: want host:port, got %q", p))
		}
	}
	if n := count(c.TLSCert, c.TLSKey, c.TLSCA); n != 0 && n != 3 {
		errs = append(errs, errors.New("CLUSTER_TLS_CERT, CLUSTER_TLS_KEY and CLUSTER_TLS_CA go together"))
	}
	return errors.Join(errs...)
}

func count(s ...string) int {
	n := 0
	for _, v := range s {
		if v != "" {
			n++
		}
	}
	return n
}

// Clustered reports whether actors are Proto.Actor grains.
func (c ClusterConfig) Clustered() bool {
	return c.Provider != "" && c.Provider != ProviderLocal
}

// place builds the node's router for its kinds.
func place(system *actor.ActorSystem, c ClusterConfig, kinds map[string]cluster.Producer, reg prometheus.Registerer, log *slog.Logger) (placement, error) {
	if !c.Clustered() {
		return cluster.NewLocal(system, kinds, cluster.WithMetrics(reg)), nil
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	var provider pcluster.ClusterProvider
	var err error
	switch c.Provider {
	case ProviderStatic:
		provider, err = cluster.NewStaticProvider(c.Port, c.Peers)
	case ProviderEtcd:
		provider, err = cluster.NewEtcdProvider(c.EtcdEndpoints)
	}
	if err != nil {
		return nil, err
	}
	server, dial, err := tlsOptions(c)
	if err != nil {
		return nil, err
	}
	host := c.Host
	if host == "" {
		host = "127.0.0.1"
	}
	g, err := cluster.StartGrains(system, cluster.GrainsConfig{
		Name: c.Name, Host: host, Port: c.Port, AdvertisedAddress: c.Advertised,
		Provider: provider, ServerOptions: server, DialOptions: dial,
		Kinds: kinds, Registerer: reg, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	log.Info("cluster member started", "provider", c.Provider, "address", g.Address(), "members", len(g.Members()))
	if reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cluster_members", Help: "Members of the cluster this node sees, itself included.",
		}, func() float64 { return float64(len(g.Members())) }))
	}
	return g, nil
}

// tlsOptions loads the mutual-TLS settings into gRPC options (none when
// TLS is off).
func tlsOptions(c ClusterConfig) ([]grpc.ServerOption, []grpc.DialOption, error) {
	if c.TLSCert == "" {
		return nil, nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster TLS: %w", err)
	}
	caPEM, err := os.ReadFile(c.TLSCA)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("cluster TLS: no certificate in %s", c.TLSCA)
	}
	server := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	client := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		MinVersion:   tls.VersionTLS12,
	}
	return []grpc.ServerOption{grpc.Creds(credentials.NewTLS(server))},
		[]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(client))}, nil
}

// ClusterAddress is this node's cluster address (host:port), or "" when
// its actors are local.
func (n *Node) ClusterAddress() string {
	if g, ok := n.router.(*cluster.Grains); ok {
		return g.Address()
	}
	return ""
}

// ClusterMembers returns the members this node sees (nil when local).
func (n *Node) ClusterMembers() []string {
	if g, ok := n.router.(*cluster.Grains); ok {
		return g.Members()
	}
	return nil
}

// newFeed builds the node's token feed when its actors are grains: the
// queue manager may run on another node (nil otherwise).
func (n *Node) newFeed(r cluster.Router) *actors.TokenFeed {
	if !n.cfg.Cluster.Clustered() {
		return nil
	}
	return actors.NewTokenFeed(actors.TokenFeedConfig{
		Table: n.tokens, Router: r, System: n.system,
		Registerer: n.registry, Logger: n.cfg.Logger,
	})
}

// startFeed starts subscribing once the router works, and asks for a full
// snapshot on every topology change (the queue manager may have moved).
func (n *Node) startFeed() {
	if n.feed == nil {
		return
	}
	if g, ok := n.router.(*cluster.Grains); ok {
		feed := n.feed
		g.Cluster().ActorSystem.EventStream.Subscribe(func(ev any) {
			if _, ok := ev.(*pcluster.ClusterTopology); ok {
				feed.Resync()
			}
		})
	}
	n.feed.Start()
}

// tokenChecker is what the booking service checks tokens with.
func (n *Node) tokenChecker() booking.Tokens {
	if n.feed != nil {
		return n.feed
	}
	return n.tokens
}

// TokenFeed is the node's token feed (nil unless clustered), for tests.
func (n *Node) TokenFeed() *actors.TokenFeed { return n.feed }
