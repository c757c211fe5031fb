package e2e

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// TestAccountSettings: account settings through the SDK and the CLI. A
// principal's value wins over the account default, which wins over AWS's;
// the account's containerInsights default is what a new cluster gets;
// settings Berth cannot honour, and bad names and values, are refused and
// change nothing.
func TestAccountSettings(t *testing.T) {
	e := newEnv(t)
	const role = "arn:aws:iam::000000000000:role/deployer"

	eff, err := e.ecs.ListAccountSettings(e.ctx, &ecs.ListAccountSettingsInput{EffectiveSettings: true, Name: types.SettingNameContainerInsights})
	if err != nil || len(eff.Settings) != 1 || aws.ToString(eff.Settings[0].Value) != "disabled" || eff.Settings[0].Type != types.SettingTypeAwsManaged {
		t.Fatalf("AWS's default: %v %+v", err, eff)
	}
	def, err := e.ecs.PutAccountSettingDefault(e.ctx, &ecs.PutAccountSettingDefaultInput{Name: types.SettingNameContainerInsights, Value: aws.String("enhanced")})
	if err != nil || aws.ToString(def.Setting.PrincipalArn) != "arn:aws:iam::000000000000:root" || aws.ToString(def.Setting.Value) != "enhanced" {
		t.Fatalf("put default: %v %+v", err, def)
	}
	if _, err := e.ecs.PutAccountSetting(e.ctx, &ecs.PutAccountSettingInput{Name: types.SettingNameContainerInsights, Value: aws.String("disabled"), PrincipalArn: aws.String(role)}); err != nil {
		t.Fatal(err)
	}
	own, err := e.ecs.ListAccountSettings(e.ctx, &ecs.ListAccountSettingsInput{PrincipalArn: aws.String(role), EffectiveSettings: true, Name: types.SettingNameContainerInsights})
	if err != nil || len(own.Settings) != 1 || aws.ToString(own.Settings[0].Value) != "disabled" || aws.ToString(own.Settings[0].PrincipalArn) != role {
		t.Fatalf("the role's own value: %v %+v", err, own)
	}

	// A new cluster takes the account's default; one that names its own
	// keeps it; UpdateClusterSettings changes it.
	c, err := e.ecs.CreateCluster(e.ctx, &ecs.CreateClusterInput{ClusterName: aws.String("insights")})
	if err != nil || len(c.Cluster.Settings) != 1 || aws.ToString(c.Cluster.Settings[0].Value) != "enhanced" {
		t.Fatalf("new cluster's settings: %v %+v", err, c)
	}
	u, err := e.ecs.UpdateClusterSettings(e.ctx, &ecs.UpdateClusterSettingsInput{Cluster: aws.String("insights"),
		Settings: []types.ClusterSetting{{Name: types.ClusterSettingNameContainerInsights, Value: aws.String("enabled")}}})
	if err != nil || aws.ToString(u.Cluster.Settings[0].Value) != "enabled" {
		t.Fatalf("update cluster settings: %v %+v", err, u)
	}
	_, err = e.ecs.UpdateClusterSettings(e.ctx, &ecs.UpdateClusterSettingsInput{Cluster: aws.String("ghost"),
		Settings: []types.ClusterSetting{{Name: types.ClusterSettingNameContainerInsights, Value: aws.String("enabled")}}})
	wantCode(t, "settings of a missing cluster", err, "ClusterNotFoundException")

	// Refused, and nothing changed.
	for what, in := range map[string]*ecs.PutAccountSettingInput{
		"short ARNs":          {Name: types.SettingNameTaskLongArnFormat, Value: aws.String("disabled")},
		"a bad value":         {Name: types.SettingNameContainerInsights, Value: aws.String("sometimes")},
		"an unknown name":     {Name: "noSuchSetting", Value: aws.String("on")},
		"a read-only setting": {Name: types.SettingNameGuardDutyActivate, Value: aws.String("on")},
		"a default-only one":  {Name: types.SettingNameFargateFipsMode, Value: aws.String("enabled"), PrincipalArn: aws.String(role)},
		"another account's":   {Name: types.SettingNameContainerInsights, Value: aws.String("enabled"), PrincipalArn: aws.String("arn:aws:iam::123456789012:role/x")},
		"not a principal ARN": {Name: types.SettingNameContainerInsights, Value: aws.String("enabled"), PrincipalArn: aws.String("deployer")},
	} {
		_, err := e.ecs.PutAccountSetting(e.ctx, in)
		wantCode(t, what, err, "InvalidParameterException")
	}
	all, err := e.ecs.ListAccountSettings(e.ctx, &ecs.ListAccountSettingsInput{EffectiveSettings: true, MaxResults: 4})
	if err != nil || len(all.Settings) != 4 || all.NextToken == nil {
		t.Fatalf("first page of effective settings: %v %+v", err, all)
	}
	n := len(all.Settings)
	for all.NextToken != nil {
		if all, err = e.ecs.ListAccountSettings(e.ctx, &ecs.ListAccountSettingsInput{EffectiveSettings: true, MaxResults: 4, NextToken: all.NextToken}); err != nil {
			t.Fatal(err)
		}
		n += len(all.Settings)
		for _, s := range all.Settings {
			if s.Name == types.SettingNameTaskLongArnFormat && aws.ToString(s.Value) != "enabled" {
				t.Fatalf("a refused put changed %s: %+v", s.Name, s)
			}
		}
	}
	if n != 10 {
		t.Fatalf("%d effective settings, want all 10", n)
	}

	// Deleting the role's value leaves the account's default in force.
	del, err := e.ecs.DeleteAccountSetting(e.ctx, &ecs.DeleteAccountSettingInput{Name: types.SettingNameContainerInsights, PrincipalArn: aws.String(role)})
	if err != nil || aws.ToString(del.Setting.Value) != "disabled" {
		t.Fatalf("delete: %v %+v", err, del)
	}
	own, err = e.ecs.ListAccountSettings(e.ctx, &ecs.ListAccountSettingsInput{PrincipalArn: aws.String(role), EffectiveSettings: true, Name: types.SettingNameContainerInsights})
	if err != nil || aws.ToString(own.Settings[0].Value) != "enhanced" {
		t.Fatalf("after delete: %v %+v", err, own)
	}
	mine, err := e.ecs.ListAccountSettings(e.ctx, &ecs.ListAccountSettingsInput{PrincipalArn: aws.String(role)})
	if err != nil || len(mine.Settings) != 0 {
		t.Fatalf("the role sets nothing now: %v %+v", err, mine)
	}

	// The AWS CLI, unchanged.
	out, msg := runAWS(t, e.srv.Endpoint(), "ecs", "list-account-settings", "--effective-settings", "--name", "containerInsights")
	if msg != "" || len(out["settings"].([]any)) != 1 {
		t.Fatalf("cli list-account-settings: %s %v", msg, out)
	}
}
