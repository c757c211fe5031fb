package efs

import "testing"

func TestPolicyEvaluation(t *testing.T) {
	const role = "arn:aws:iam::000000000000:role/app"
	const ap = "arn:aws:elasticfilesystem:us-east-1:000000000000:access-point/fsap-1"
	policy := `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"elasticfilesystem:ClientMount",
		 "Condition":{"Bool":{"aws:SecureTransport":"true"}}},
		{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:role/app"]},"Action":["elasticfilesystem:ClientWrite"],
		 "Condition":{"StringEquals":{"elasticfilesystem:AccessPointArn":"` + ap + `"}}},
		{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"elasticfilesystem:ClientRootAccess"}]}`
	if _, err := ParsePolicy(policy); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		r      Request
		action string
		want   bool
	}{
		{"mount over TLS", Request{SecureTransport: true}, ActionMount, true},
		{"mount in plain text", Request{}, ActionMount, false},
		{"write as the role through the access point", Request{Principal: role, AccessPointArn: ap, SecureTransport: true}, ActionWrite, true},
		{"write as the role without the access point", Request{Principal: role, SecureTransport: true}, ActionWrite, false},
		{"write as another role", Request{Principal: "arn:aws:iam::000000000000:role/x", AccessPointArn: ap}, ActionWrite, false},
		{"write anonymously", Request{AccessPointArn: ap}, ActionWrite, false},
		{"root access, explicitly denied", Request{Principal: role, AccessPointArn: ap, SecureTransport: true}, ActionRoot, false},
	}
	for _, c := range cases {
		if got := Allows(policy, &c.r, c.action); got != c.want {
			t.Errorf("%s: got %v", c.name, got)
		}
	}
	if !Allows("", &Request{}, ActionRoot) {
		t.Error("no policy must allow everything, as EFS's default policy does")
	}
	for _, bad := range []string{`{`, `{"Statement":[]}`, `{"Statement":[{"Effect":"Maybe","Action":"elasticfilesystem:ClientMount"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"s3:GetObject"}]}`, `{"Statement":[{"Effect":"Allow","Action":"*","Condition":{"NumericLessThan":{"a":"1"}}}]}`} {
		if _, err := ParsePolicy(bad); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
