package cluster

import (
	"fmt"
	"net"
	"strconv"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// singleProvider is the membership of a node that is its own cluster: the
// member list is this member, once, and never changes. No port besides the
// remote one is opened.
type singleProvider struct{}

// NewSingleProvider returns the membership of a one-member cluster.
func NewSingleProvider() pcluster.ClusterProvider { return singleProvider{} }

func (singleProvider) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(pcluster.Members{{
		Id:    c.ActorSystem.ID,
		Host:  host,
		Port:  int32(port),
		Kinds: c.GetClusterKinds(),
	}})
	return nil
}

func (singleProvider) StartClient(*pcluster.Cluster) error { return nil }
func (singleProvider) Shutdown(bool) error                 { return nil }

// StaticHealthPortOffset is added to a member's cluster port to get the port
// of the static provider's health server, which the other members poll.
const StaticHealthPortOffset = 1000

// StaticRefresh is how often the static provider polls its peers.
const StaticRefresh = time.Second

// NewStaticProvider returns Proto.Actor's automanaged provider over a fixed
// list of members, each given as its cluster host:port (this node's own
// included or not). A member's health server listens on its cluster port
// plus StaticHealthPortOffset, on every interface: keep it off the internet.
func NewStaticProvider(selfPort int, peers []string) (pcluster.ClusterProvider, error) {
	hosts := make([]string, 0, len(peers))
	for _, p := range peers {
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			return nil, fmt.Errorf("static peer %q: want host:port", p)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n+StaticHealthPortOffset > 65535 {
			return nil, fmt.Errorf("static peer %q: bad port", p)
		}
		hosts = append(hosts, net.JoinHostPort(host, strconv.Itoa(n+StaticHealthPortOffset)))
	}
	if selfPort <= 0 {
		return nil, fmt.Errorf("static provider: the cluster port must be set (not 0)")
	}
	return automanaged.NewWithConfig(StaticRefresh, selfPort+StaticHealthPortOffset, hosts...), nil
}

// NewEtcdProvider returns Proto.Actor's etcd provider: members register
// under /protoactor/<cluster name> with a lease (3 s, fixed by the
// provider) and watch each other.
func NewEtcdProvider(endpoints []string) (pcluster.ClusterProvider, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("etcd provider: no endpoints")
	}
	p, err := etcd.NewWithConfig("/protoactor", clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd provider: %w", err)
	}
	return p, nil
}
