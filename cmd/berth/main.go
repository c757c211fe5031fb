// Command berth runs Berth: a self-hosted home for stateful containers that
// speaks the Amazon ECS API.
package main

import (
	"os"

	"github.com/berth-project/berth/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
