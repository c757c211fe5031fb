package e2e

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// BenchmarkAwsvpcToRunning measures RunTask until DescribeTasks says
// RUNNING for an awsvpc task (a pause container holding its namespace,
// an address on the task network) against the same task in bridge mode,
// alternating on one agent in one run:
//
//	go test -run '^$' -bench AwsvpcToRunning -benchtime 20x ./test/e2e/
func BenchmarkAwsvpcToRunning(b *testing.B) {
	_, s, ctx := benchAgent(b)
	c := client(s.Endpoint(), "k", "s")
	def := func(mode types.NetworkMode) *string {
		reg, err := c.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{Family: aws.String("bench-" + string(mode)), NetworkMode: mode,
			ContainerDefinitions: []types.ContainerDefinition{{Name: aws.String("app"), Image: aws.String(testImage), Memory: aws.Int32(16),
				Command: []string{"sleep", "3600"}, StopTimeout: aws.Int32(1)}}})
		if err != nil {
			b.Fatal(err)
		}
		return reg.TaskDefinition.TaskDefinitionArn
	}
	bridge, awsvpc := def(types.NetworkModeBridge), def(types.NetworkModeAwsvpc)
	run := func(in *ecs.RunTaskInput) (time.Duration, *string) { return untilRunningIn(b, ctx, c, in) }
	// The first awsvpc task makes the pause image and the task network.
	run(&ecs.RunTaskInput{TaskDefinition: awsvpc, NetworkConfiguration: awsvpcIn("subnet-us-east-1a")})
	var bs, as []time.Duration
	var arns []*string
	b.ResetTimer()
	// Each start is measured on a settled machine: the agent's background
	// work after a start (refilling its warm pause containers) would
	// otherwise slow the next one down, whichever it is.
	settle := func() { b.StopTimer(); time.Sleep(time.Second); b.StartTimer() }
	for i := 0; i < b.N; i++ {
		settle()
		d, arn := run(&ecs.RunTaskInput{TaskDefinition: bridge})
		bs, arns = append(bs, d), append(arns, arn)
		settle()
		d, arn = run(&ecs.RunTaskInput{TaskDefinition: awsvpc, NetworkConfiguration: awsvpcIn("subnet-us-east-1a")})
		as, arns = append(as, d), append(arns, arn)
	}
	b.StopTimer()
	mb, ma := medianMS(bs), medianMS(as)
	b.ReportMetric(mb, "bridge-median-ms")
	b.ReportMetric(ma, "awsvpc-median-ms")
	b.ReportMetric(ma/mb, "awsvpc/bridge")
	for _, arn := range arns {
		c.StopTask(ctx, &ecs.StopTaskInput{Task: arn})
	}
}
