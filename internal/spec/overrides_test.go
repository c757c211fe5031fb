package spec

import "testing"

func TestApplyContainerOverrides(t *testing.T) {
	def := &TaskDefinition{ContainerDefinitions: []ContainerDefinition{
		{Name: Str("a"), Command: []string{"old"}, Memory: I32(64), Environment: []KeyValuePair{{Name: Str("X"), Value: Str("1")}, {Name: Str("Y"), Value: Str("2")}}},
		{Name: Str("b"), Command: []string{"keep"}},
	}}
	orig := def.ContainerDefinitions
	ApplyContainerOverrides(def, &TaskOverride{ContainerOverrides: []ContainerOverride{{Name: Str("a"), Command: []string{"new"}, Memory: I32(128),
		Environment: []KeyValuePair{{Name: Str("Y"), Value: Str("3")}, {Name: Str("Z"), Value: Str("4")}}}}})
	a := def.ContainerDefinitions[0]
	if a.Command[0] != "new" || Val(a.Memory) != 128 || len(a.Environment) != 3 || Val(a.Environment[1].Value) != "3" || Val(a.Environment[2].Name) != "Z" {
		t.Fatalf("overridden container: %+v", a)
	}
	if def.ContainerDefinitions[1].Command[0] != "keep" {
		t.Fatal("other container changed")
	}
	if orig[0].Command[0] != "old" || Val(orig[0].Memory) != 64 {
		t.Fatal("the definition's own containers were changed in place")
	}
}
