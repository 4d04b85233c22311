package loadgen

import (
	"errors"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		raw         string
		allowRemote bool
		wantErr     bool
		remote      bool // the error is ErrRemoteTarget
		wantPath    string
	}{
		{raw: "http://127.0.0.1:8080"},
		{raw: "http://127.0.0.1:8080/", wantPath: ""},
		{raw: "http://127.1.2.3:9000/api/", wantPath: "/api"},
		{raw: "http://localhost:8080"},
		{raw: "http://LOCALHOST"},
		{raw: "https://[::1]:8443"},
		{raw: "http://10.0.0.5:8080", wantErr: true, remote: true},
		{raw: "http://192.168.1.10", wantErr: true, remote: true},
		{raw: "http://example.com", wantErr: true, remote: true},
		{raw: "http://localhost.example.com", wantErr: true, remote: true},
		{raw: "http://0.0.0.0:8080", wantErr: true, remote: true},
		{raw: "http://[::ffff:10.0.0.1]:80", wantErr: true, remote: true},
		{raw: "http://example.com", allowRemote: true},
		{raw: "ftp://127.0.0.1", wantErr: true},
		{raw: "127.0.0.1:8080", wantErr: true},
		{raw: "http://user:pw@127.0.0.1", wantErr: true},
		{raw: "http://127.0.0.1/?x=1", wantErr: true},
		{raw: "http://127.0.0.1:99999", wantErr: true},
		{raw: "http://", wantErr: true},
	}
	for _, tt := range tests {
		u, err := CheckTarget(tt.raw, tt.allowRemote)
		if (err != nil) != tt.wantErr {
			t.Errorf("CheckTarget(%q, %v) error = %v, want error %v", tt.raw, tt.allowRemote, err, tt.wantErr)
			continue
		}
		if err != nil {
			if got := errors.Is(err, ErrRemoteTarget); got != tt.remote {
				t.Errorf("CheckTarget(%q): errors.Is(ErrRemoteTarget) = %v, want %v (%v)", tt.raw, got, tt.remote, err)
			}
			continue
		}
		if u.Path != tt.wantPath {
			t.Errorf("CheckTarget(%q).Path = %q, want %q", tt.raw, u.Path, tt.wantPath)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.255.255.254": true, "::1": true, "[::1]": true,
		"localhost": true, "localhost.": true, "db.localhost": true,
		"128.0.0.1": false, "::": false, "10.1.1.1": false, "": false, "localhostx": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
