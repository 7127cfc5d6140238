package audit

import (
	"strings"
	"testing"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
)

func TestDescribe(t *testing.T) {
	const c = "/berth.v1.ClusterService/"
	for _, tc := range []struct {
		method     string
		req        proto.Message
		ns, target string
	}{
		{c + "Apply", &berthv1.ApplyRequest{Namespace: "team-a", App: "web", Services: []*berthv1.Service{{Name: "api"}}}, "team-a", "app web"},
		{c + "DeleteApp", &berthv1.DeleteAppRequest{App: "web"}, "", "app web"},
		{c + "ScaleService", &berthv1.ScaleServiceRequest{App: "web", Service: "api", Replicas: 3}, "", "service web/api"},
		{c + "UpdateNode", &berthv1.UpdateNodeRequest{Node: "beta"}, "", "node beta"},
		{c + "RemoveNode", &berthv1.RemoveNodeRequest{Node: "beta"}, "", "node beta"},
		{c + "CreateAPIToken", &berthv1.CreateAPITokenRequest{Name: "ci", Role: "deployer"}, "", "token ci"},
		{c + "RevokeAPIToken", &berthv1.RevokeAPITokenRequest{Token: "ci"}, "", "token ci"},
		{c + "CreateSecret", &berthv1.CreateSecretRequest{Namespace: "team-a", Name: "db", Data: []byte(secretData)}, "team-a", "secret db"},
		{c + "RemoveConfig", &berthv1.RemoveConfigRequest{Name: "nginx"}, "", "config nginx"},
		{c + "CreateNetwork", &berthv1.CreateNetworkRequest{Name: "backend"}, "", "network backend"},
		{c + "RemoveVolume", &berthv1.RemoveVolumeRequest{Name: "data"}, "", "volume data"},
		{c + "CreateNamespace", &berthv1.CreateNamespaceRequest{Name: "team-a"}, "", "namespace team-a"},
		{c + "CreateUser", &berthv1.CreateUserRequest{Name: "alice", Csr: []byte("CSR")}, "", "user alice"},
		{c + "Login", &berthv1.LoginRequest{Registry: "registry.local:5000", Username: "bob", Password: secretData}, "", "registry registry.local:5000"},
		{c + "PullImage", &berthv1.PullImageRequest{Image: "busybox:1"}, "", "image busybox:1"},
		{c + "PushImage", &berthv1.PushImageRequest{Image: "web:1", Node: "alpha"}, "", "image web:1"},
		{c + "Build", &berthv1.BuildRequest{Part: &berthv1.BuildRequest_Header{Header: &berthv1.BuildHeader{Tags: []string{"web:dev"}, Node: "alpha"}}}, "", "image web:dev"},
		{c + "ImportImage", &berthv1.ImportImageRequest{Part: &berthv1.ImportImageRequest_Header{Header: &berthv1.ImportImageHeader{}}}, "", ""},
		{c + "Exec", &berthv1.ExecRequest{Part: &berthv1.ExecRequest_Start{Start: &berthv1.ExecStart{Namespace: "team-b", App: "web", Service: "api"}}}, "team-b", "service web/api"},
		{c + "Exec", &berthv1.ExecRequest{Part: &berthv1.ExecRequest_Stdin{Stdin: []byte("x")}}, "", ""},
		{c + "UpdateSettings", &berthv1.UpdateSettingsRequest{}, "", ""},
		{c + "JoinToken", &berthv1.JoinTokenRequest{Rotate: true}, "", ""},
		{"/berth.v1.AgentService/Join", &berthv1.JoinRequest{Token: secretData, NodeName: "gamma"}, "", "node gamma"},
		{c + "DeleteApp", &berthv1.DeleteAppRequest{App: strings.Repeat("a", 300)}, "", "app " + strings.Repeat("a", maxName) + "…"},
	} {
		ns, target := describe(tc.method, tc.req)
		if ns != tc.ns || target != tc.target {
			t.Errorf("%s %v: namespace %q, target %q; want %q, %q", tc.method, tc.req, ns, target, tc.ns, tc.target)
		}
		if strings.Contains(target, secretData) {
			t.Errorf("%s: the target holds a secret", tc.method)
		}
	}
}

func TestNounOf(t *testing.T) {
	for method, want := range map[string]string{
		"CreateAPIToken": "token", "RemoveNamespace": "namespace", "DeleteApp": "app", "Join": "", "": "",
	} {
		if got := nounOf(method); got != want {
			t.Errorf("nounOf(%q) = %q, want %q", method, got, want)
		}
	}
}
