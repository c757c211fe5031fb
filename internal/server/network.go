package server

import (
	"context"

	"github.com/berth-project/berth/internal/vpc"
)

// NetworkList is the task network: the VPC's range, its subnets (one
// per zone) and each instance's block of task addresses.
type NetworkList struct {
	CIDR    string       `json:"cidrBlock"`
	Subnets []vpc.Subnet `json:"subnets"`
	Blocks  []vpc.Block  `json:"blocks"`
}

func (s *Server) networkList(ctx context.Context, _ *struct{}) (*NetworkList, error) {
	subnets, blocks, err := vpc.List(ctx, s.client)
	if err != nil {
		return nil, err
	}
	if subnets == nil {
		subnets = []vpc.Subnet{}
	}
	if blocks == nil {
		blocks = []vpc.Block{}
	}
	return &NetworkList{CIDR: vpc.CIDR, Subnets: subnets, Blocks: blocks}, nil
}
