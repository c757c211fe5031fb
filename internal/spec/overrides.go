package spec

// ApplyContainerOverrides applies a task's containerOverrides (command,
// environment, cpu, memory, memoryReservation) to a copy of its containers,
// as ECS does; unknown container names are ignored here (the API refuses them).
func ApplyContainerOverrides(def *TaskDefinition, o *TaskOverride) {
	if o == nil {
		return
	}
	def.ContainerDefinitions = append([]ContainerDefinition(nil), def.ContainerDefinitions...)
	for _, co := range o.ContainerOverrides {
		for i := range def.ContainerDefinitions {
			c := &def.ContainerDefinitions[i]
			if Val(c.Name) != Val(co.Name) {
				continue
			}
			if co.Command != nil {
				c.Command = co.Command
			}
			if co.Cpu != nil {
				c.Cpu = co.Cpu
			}
			if co.Memory != nil {
				c.Memory = co.Memory
			}
			if co.MemoryReservation != nil {
				c.MemoryReservation = co.MemoryReservation
			}
			c.Environment = mergeEnv(c.Environment, co.Environment)
		}
	}
}

func mergeEnv(base, over []KeyValuePair) []KeyValuePair {
	if len(over) == 0 {
		return base
	}
	env := append([]KeyValuePair(nil), base...)
	for _, kv := range over {
		replaced := false
		for j := range env {
			if Val(env[j].Name) == Val(kv.Name) {
				env[j] = kv
				replaced = true
			}
		}
		if !replaced {
			env = append(env, kv)
		}
	}
	return env
}
