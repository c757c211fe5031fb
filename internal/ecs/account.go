package ecs

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"github.com/berth-project/berth/internal/spec"
	"github.com/berth-project/berth/internal/state"
)

// Account settings, as ECS keeps them: a value per principal (an IAM user,
// role or the account's root) and the account's defaults, over AWS's own
// defaults. Berth acts on containerInsights (a new cluster's setting when
// its request names none) and always uses the long ARN formats; the other
// settings are kept and listed for tools that read them.

// accountSettings is the stored record: principal ARN → name → value;
// the account's defaults are under its root's ARN.
type accountSettings struct {
	Principals map[string]map[string]string `json:"principals"`
}

// settingRule is one setting's allowed values and AWS's default for it.
type settingRule struct {
	values []string
	def    string
	// defaultOnly: only PutAccountSettingDefault may set it; readOnly:
	// neither may.
	defaultOnly, readOnly bool
	// fixed: Berth has only the default's behaviour.
	fixed bool
}

var settingRules = map[string]settingRule{
	"serviceLongArnFormat":            {values: []string{"enabled", "disabled"}, def: "enabled", fixed: true},
	"taskLongArnFormat":               {values: []string{"enabled", "disabled"}, def: "enabled", fixed: true},
	"containerInstanceLongArnFormat":  {values: []string{"enabled", "disabled"}, def: "enabled", fixed: true},
	"awsvpcTrunking":                  {values: []string{"enabled", "disabled"}, def: "disabled"},
	"containerInsights":               {values: []string{"enabled", "disabled", "enhanced"}, def: "disabled"},
	"fargateFIPSMode":                 {values: []string{"enabled", "disabled"}, def: "disabled", defaultOnly: true},
	"tagResourceAuthorization":        {values: []string{"on", "off"}, def: "on"},
	"fargateTaskRetirementWaitPeriod": {values: []string{"0", "7", "14"}, def: "7", defaultOnly: true},
	"guardDutyActivate":               {values: []string{"on", "off"}, def: "off", readOnly: true},
	"defaultLogDriverMode":            {values: []string{"blocking", "non-blocking"}, def: "blocking"},
}

func settingNames() []string {
	names := make([]string, 0, len(settingRules))
	for n := range settingRules {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (a *API) rootARN() string { return "arn:aws:iam::" + a.Account + ":root" }

var principalRE = regexp.MustCompile(`^arn:aws:iam::(\d{12}):(root|(user|role)/[\w+=,.@/-]{1,512})$`)

// principal checks a request's principalArn; none is the account's root.
func (a *API) principal(p *string) (string, error) {
	if spec.Val(p) == "" {
		return a.rootARN(), nil
	}
	m := principalRE.FindStringSubmatch(*p)
	if m == nil {
		return "", spec.InvalidParam("principalArn '%s' is not the ARN of an IAM user, role or the root user.", *p)
	}
	if m[1] != a.Account {
		return "", spec.InvalidParam("principalArn '%s' is not of this account (%s).", *p, a.Account)
	}
	return *p, nil
}

// knownSetting checks that a setting name is one of ECS's.
func knownSetting(name string) error {
	if _, ok := settingRules[name]; !ok {
		return spec.InvalidParam("Invalid setting name '%s'. Valid names: %v.", name, settingNames())
	}
	return nil
}

// checkSetting validates a name and a value for a put.
func checkSetting(name, value string, asDefault bool) error {
	if err := knownSetting(name); err != nil {
		return err
	}
	rule := settingRules[name]
	switch {
	case rule.readOnly:
		return spec.InvalidParam("The %s setting is read-only.", name)
	case rule.defaultOnly && !asDefault:
		return spec.InvalidParam("The %s setting can only be set as the account default (PutAccountSettingDefault).", name)
	case !slices.Contains(rule.values, value):
		return spec.InvalidParam("Invalid value '%s' for setting %s. Valid values: %v.", value, name, rule.values)
	case rule.fixed && value != rule.def:
		return spec.InvalidParam("Berth always uses the long ARN formats: %s cannot be %s.", name, value)
	}
	return nil
}

func (a *API) loadAccountSettings(ctx context.Context) (*accountSettings, int64, error) {
	s := &accountSettings{}
	rev, err := a.Store.Get(ctx, state.AccountSettingsKey(), s)
	if errors.Is(err, state.ErrNotFound) {
		err = nil
	}
	if s.Principals == nil {
		s.Principals = map[string]map[string]string{}
	}
	return s, rev, err
}

// changeAccountSettings applies fn to the record and writes it back,
// retrying on a lost race.
func (a *API) changeAccountSettings(ctx context.Context, fn func(*accountSettings) error) error {
	for range 50 {
		s, rev, err := a.loadAccountSettings(ctx)
		if err != nil {
			return err
		}
		if err := fn(s); err != nil {
			return err
		}
		if err := a.Store.Put(ctx, state.AccountSettingsKey(), s, rev); err == nil || !errors.Is(err, state.ErrConflict) {
			return err
		}
	}
	return spec.Exception("ServerException", "Too many concurrent changes to the account settings; try again.")
}

// effective is a setting's value for a principal: its own, else the
// account's default, else AWS's; typ tells which ("user" for a value set
// by a user, "aws_managed" for AWS's default).
func (a *API) effective(s *accountSettings, principal, name string) (value, typ string) {
	if v, ok := s.Principals[principal][name]; ok {
		return v, "user"
	}
	if v, ok := s.Principals[a.rootARN()][name]; ok {
		return v, "user"
	}
	return settingRules[name].def, "aws_managed"
}

// defaultClusterSettings are a new cluster's settings when its request
// names none: containerInsights as the account says.
func (a *API) defaultClusterSettings(ctx context.Context) ([]spec.ClusterSetting, error) {
	s, _, err := a.loadAccountSettings(ctx)
	if err != nil {
		return nil, err
	}
	v, _ := a.effective(s, a.rootARN(), "containerInsights")
	return []spec.ClusterSetting{{Name: spec.Str("containerInsights"), Value: spec.Str(v)}}, nil
}

func (a *API) setSetting(ctx context.Context, principal, name, value string) (*spec.Setting, error) {
	err := a.changeAccountSettings(ctx, func(s *accountSettings) error {
		if s.Principals[principal] == nil {
			s.Principals[principal] = map[string]string{}
		}
		s.Principals[principal][name] = value
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &spec.Setting{Name: spec.Str(name), Value: spec.Str(value), PrincipalArn: spec.Str(principal), Type: spec.Str("user")}, nil
}

// PutAccountSetting sets a setting for a principal (the root by default).
func (a *API) PutAccountSetting(ctx context.Context, r *spec.PutAccountSettingRequest) (*spec.PutAccountSettingResponse, error) {
	p, err := a.principal(r.PrincipalArn)
	if err != nil {
		return nil, err
	}
	// The root's own value is the account's default.
	if err := checkSetting(spec.Val(r.Name), spec.Val(r.Value), p == a.rootARN()); err != nil {
		return nil, err
	}
	st, err := a.setSetting(ctx, p, spec.Val(r.Name), spec.Val(r.Value))
	if err != nil {
		return nil, err
	}
	return &spec.PutAccountSettingResponse{Setting: st}, nil
}

// PutAccountSettingDefault sets the account's default of a setting.
func (a *API) PutAccountSettingDefault(ctx context.Context, r *spec.PutAccountSettingDefaultRequest) (*spec.PutAccountSettingDefaultResponse, error) {
	if err := checkSetting(spec.Val(r.Name), spec.Val(r.Value), true); err != nil {
		return nil, err
	}
	st, err := a.setSetting(ctx, a.rootARN(), spec.Val(r.Name), spec.Val(r.Value))
	if err != nil {
		return nil, err
	}
	return &spec.PutAccountSettingDefaultResponse{Setting: st}, nil
}

// DeleteAccountSetting removes a principal's own value of a setting, so
// the account's default (or AWS's) applies again; it returns the setting
// as it was.
func (a *API) DeleteAccountSetting(ctx context.Context, r *spec.DeleteAccountSettingRequest) (*spec.DeleteAccountSettingResponse, error) {
	p, err := a.principal(r.PrincipalArn)
	if err != nil {
		return nil, err
	}
	name := spec.Val(r.Name)
	if err := knownSetting(name); err != nil {
		return nil, err
	}
	var was *spec.Setting
	err = a.changeAccountSettings(ctx, func(s *accountSettings) error {
		v, typ := a.effective(s, p, name)
		was = &spec.Setting{Name: spec.Str(name), Value: spec.Str(v), PrincipalArn: spec.Str(p), Type: spec.Str(typ)}
		delete(s.Principals[p], name)
		if len(s.Principals[p]) == 0 {
			delete(s.Principals, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &spec.DeleteAccountSettingResponse{Setting: was}, nil
}

// ListAccountSettings lists the settings set for a principal (the root by
// default), or with effectiveSettings every setting's value in force,
// filtered by name and value, a page at a time.
func (a *API) ListAccountSettings(ctx context.Context, r *spec.ListAccountSettingsRequest) (*spec.ListAccountSettingsResponse, error) {
	p, err := a.principal(r.PrincipalArn)
	if err != nil {
		return nil, err
	}
	if n := spec.Val(r.Name); n != "" {
		if err := knownSetting(n); err != nil {
			return nil, err
		}
	}
	if spec.Val(r.Value) != "" && spec.Val(r.Name) == "" {
		return nil, spec.InvalidParam("A value filter needs a setting name.")
	}
	limit := 10
	if r.MaxResults != nil {
		if *r.MaxResults < 1 || *r.MaxResults > 10 {
			return nil, spec.InvalidParam("maxResults must be between 1 and 10.")
		}
		limit = int(*r.MaxResults)
	}
	s, _, err := a.loadAccountSettings(ctx)
	if err != nil {
		return nil, err
	}
	var all []spec.Setting
	for _, name := range settingNames() {
		if n := spec.Val(r.Name); n != "" && n != name {
			continue
		}
		v, typ := a.effective(s, p, name)
		owner := p
		if _, own := s.Principals[p][name]; !own {
			if !spec.Val(r.EffectiveSettings) {
				continue
			}
			owner = a.rootARN()
		}
		if f := spec.Val(r.Value); f != "" && f != v {
			continue
		}
		all = append(all, spec.Setting{Name: spec.Str(name), Value: spec.Str(v), PrincipalArn: spec.Str(owner), Type: spec.Str(typ)})
	}
	start := 0
	if tok := spec.Val(r.NextToken); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(all) {
			return nil, spec.InvalidParam("Invalid nextToken.")
		}
		start = n
	}
	out := &spec.ListAccountSettingsResponse{Settings: []spec.Setting{}}
	end := min(start+limit, len(all))
	out.Settings = append(out.Settings, all[start:end]...)
	if end < len(all) {
		out.NextToken = spec.Str(strconv.Itoa(end))
	}
	return out, nil
}

// UpdateClusterSettings changes a cluster's settings (containerInsights).
func (a *API) UpdateClusterSettings(ctx context.Context, r *spec.UpdateClusterSettingsRequest) (*spec.UpdateClusterSettingsResponse, error) {
	if len(r.Settings) == 0 {
		return nil, spec.InvalidParam("settings must not be empty.")
	}
	out, err := a.UpdateCluster(ctx, &spec.UpdateClusterRequest{Cluster: r.Cluster, Settings: r.Settings})
	if err != nil {
		return nil, err
	}
	return &spec.UpdateClusterSettingsResponse{Cluster: out.Cluster}, nil
}
