package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestClusterSettings(t *testing.T) {
	c, err := LoadConfig([]string{"-cluster-provider=static", "-cluster-port=7101"},
		envOf(withDB(map[string]string{"CLUSTER_PEERS": "127.0.0.1:7101, 127.0.0.1:7102,,", "CLUSTER_NAME": "tickets"})))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:7101", "127.0.0.1:7102"}
	if !reflect.DeepEqual(c.Cluster.Peers, want) || c.Cluster.Port != 7101 || c.Cluster.Name != "tickets" {
		t.Fatalf("cluster config %+v", c.Cluster)
	}
	if c.Node(nil).Cluster.Provider != "static" {
		t.Fatal("the node does not get the cluster settings")
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-cluster-provider=zk"}, "CLUSTER_PROVIDER"},
		{[]string{"-cluster-provider=static", "-cluster-peers=a:1"}, "CLUSTER_PORT"},
		{[]string{"-cluster-provider=static", "-cluster-port=7000"}, "CLUSTER_PEERS"},
		{[]string{"-cluster-provider=etcd"}, "ETCD_ENDPOINTS"},
		{[]string{"-cluster-tls-cert=a.pem"}, "CLUSTER_TLS_CERT"},
		{[]string{"-cluster-port=70000"}, "cluster-port"},
		{[]string{"-cluster-peers=nocolon", "-cluster-provider=static", "-cluster-port=1"}, "host:port"},
	} {
		if _, err := LoadConfig(bad.args, envOf(withDB(nil))); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want one naming %s", bad.args, err, bad.want)
		}
	}
}
