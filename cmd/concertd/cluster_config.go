package main

import (
	"fmt"
	"strconv"
	"strings"
)

// clusterSettings place the node's actors and find its peers
// (node.ClusterConfig).
var clusterSettings = []setting{
	str("CLUSTER_PROVIDER", "cluster-provider", "single",
		"how nodes find each other: single (this node alone), static (CLUSTER_PEERS), etcd (ETCD_ENDPOINTS) or local (no cluster layer)",
		func(c *Config) *string { return &c.Cluster.Provider }),
	str("CLUSTER_NAME", "cluster-name", "concert", "cluster name; the members of one cluster share it",
		func(c *Config) *string { return &c.Cluster.Name }),
	str("CLUSTER_HOST", "cluster-host", "127.0.0.1", "address the cluster (remote) port listens on and peers dial",
		func(c *Config) *string { return &c.Cluster.Host }),
	{env: "CLUSTER_PORT", flag: "cluster-port", def: "0",
		usage: "cluster (remote) port; 0 picks a free one (single and etcd only). static: the health port is this + 1000",
		apply: func(c *Config, raw string) error {
			n, err := strconv.Atoi(strings.TrimSpace(raw))
			if err != nil || n < 0 || n > 65535 {
				return fmt.Errorf("want a port 0..65535, got %q", raw)
			}
			c.Cluster.Port = n
			return nil
		}},
	str("CLUSTER_ADVERTISED", "cluster-advertised", "", "host:port peers dial, when not CLUSTER_HOST:CLUSTER_PORT (behind NAT)",
		func(c *Config) *string { return &c.Cluster.Advertised }),
	list("CLUSTER_PEERS", "cluster-peers", "static provider: every member's CLUSTER_HOST:CLUSTER_PORT, comma-separated",
		func(c *Config) *[]string { return &c.Cluster.Peers }),
	list("ETCD_ENDPOINTS", "etcd-endpoints", "etcd provider: etcd client URLs, comma-separated (http://127.0.0.1:2379)",
		func(c *Config) *[]string { return &c.Cluster.EtcdEndpoints }),
	str("CLUSTER_TLS_CERT", "cluster-tls-cert", "", "PEM certificate of this node for mutual TLS on the cluster port (with KEY and CA)",
		func(c *Config) *string { return &c.Cluster.TLSCert }),
	str("CLUSTER_TLS_KEY", "cluster-tls-key", "", "PEM private key of CLUSTER_TLS_CERT",
		func(c *Config) *string { return &c.Cluster.TLSKey }),
	str("CLUSTER_TLS_CA", "cluster-tls-ca", "", "PEM CA that signed every member's certificate",
		func(c *Config) *string { return &c.Cluster.TLSCA }),
}

// list is a comma-separated setting; empty items are dropped.
func list(env, flag, usage string, field func(*Config) *[]string) setting {
	return setting{env: env, flag: flag, def: "", usage: usage,
		apply: func(c *Config, raw string) error {
			var out []string
			for _, v := range strings.Split(raw, ",") {
				if v = strings.TrimSpace(v); v != "" {
					out = append(out, v)
				}
			}
			*field(c) = out
			return nil
		}}
}
