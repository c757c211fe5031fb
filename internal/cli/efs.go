package cli

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/efs"
	"github.com/aws/aws-sdk-go-v2/service/efs/types"
	"github.com/spf13/cobra"
)

// efsClient is an EFS client for the endpoint, signed as the ECS client is.
func (f *userFlags) efsClient() *efs.Client {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" || secret == "" {
		id, secret = "berth", "berth"
	}
	return efs.New(efs.Options{BaseEndpoint: aws.String(f.server()), Region: "us-east-1", HTTPClient: NewHTTPClient(),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, "")})
}

func mountTargetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "mount-target", Aliases: []string{"mt"}, Short: "Mount targets: where (in which zone) tasks may mount a file system"}
	cf, lf, rf := &userFlags{}, &userFlags{}, &userFlags{}
	create := &cobra.Command{Use: "create FS_ID ZONE", Short: "Let tasks in ZONE mount the file system", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, a []string) error {
			mt, err := cf.efsClient().CreateMountTarget(cmd.Context(), &efs.CreateMountTargetInput{FileSystemId: aws.String(a[0]), SubnetId: aws.String("subnet-" + a[1])})
			if err != nil {
				return friendly(err)
			}
			return printMountTargets(cmd, cf, []types.MountTargetDescription{*mtDesc(mt)})
		}}
	ls := &cobra.Command{Use: "ls FS_ID", Short: "List a file system's mount targets", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			out, err := lf.efsClient().DescribeMountTargets(cmd.Context(), &efs.DescribeMountTargetsInput{FileSystemId: aws.String(a[0])})
			if err != nil {
				return friendly(err)
			}
			return printMountTargets(cmd, lf, out.MountTargets)
		}}
	rm := &cobra.Command{Use: "rm MOUNT_TARGET_ID", Short: "Delete a mount target (that zone's mounts end)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			_, err := rf.efsClient().DeleteMountTarget(cmd.Context(), &efs.DeleteMountTargetInput{MountTargetId: aws.String(a[0])})
			return friendly(err)
		}}
	for c, f := range map[*cobra.Command]*userFlags{create: cf, ls: lf, rm: rf} {
		f.register(c)
	}
	cmd.AddCommand(create, ls, rm)
	return cmd
}

func mtDesc(o *efs.CreateMountTargetOutput) *types.MountTargetDescription {
	return &types.MountTargetDescription{MountTargetId: o.MountTargetId, FileSystemId: o.FileSystemId, SubnetId: o.SubnetId,
		LifeCycleState: o.LifeCycleState, AvailabilityZoneName: o.AvailabilityZoneName, IpAddress: o.IpAddress}
}

func printMountTargets(cmd *cobra.Command, f *userFlags, mts []types.MountTargetDescription) error {
	if f.json() {
		return printJSON(cmd.OutOrStdout(), mts)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MOUNT TARGET\tFILE SYSTEM\tZONE\tSTATE\tADDRESS")
	for _, m := range mts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", aws.ToString(m.MountTargetId), aws.ToString(m.FileSystemId), aws.ToString(m.AvailabilityZoneName), m.LifeCycleState, aws.ToString(m.IpAddress))
	}
	return tw.Flush()
}

func accessPointCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "access-point", Aliases: []string{"ap"}, Short: "Access points: an enforced identity and root directory"}
	cf, lf, rf := &userFlags{}, &userFlags{}, &userFlags{}
	var uid, gid, ownerUID, ownerGID int64
	var path, perms string
	create := &cobra.Command{Use: "create FS_ID", Short: "Create an access point", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			in := &efs.CreateAccessPointInput{FileSystemId: aws.String(a[0])}
			if uid >= 0 {
				in.PosixUser = &types.PosixUser{Uid: aws.Int64(uid), Gid: aws.Int64(gid)}
			}
			if path != "" {
				in.RootDirectory = &types.RootDirectory{Path: aws.String(path)}
				if perms != "" {
					in.RootDirectory.CreationInfo = &types.CreationInfo{OwnerUid: aws.Int64(ownerUID), OwnerGid: aws.Int64(ownerGID), Permissions: aws.String(perms)}
				}
			}
			ap, err := cf.efsClient().CreateAccessPoint(cmd.Context(), in)
			if err != nil {
				return friendly(err)
			}
			return printAccessPoints(cmd, cf, []types.AccessPointDescription{{AccessPointId: ap.AccessPointId, FileSystemId: ap.FileSystemId,
				PosixUser: ap.PosixUser, RootDirectory: ap.RootDirectory, LifeCycleState: ap.LifeCycleState}})
		}}
	create.Flags().Int64Var(&uid, "uid", -1, "the POSIX user every operation runs as")
	create.Flags().Int64Var(&gid, "gid", 0, "its group")
	create.Flags().StringVar(&path, "path", "", "root directory (the client's /)")
	create.Flags().Int64Var(&ownerUID, "owner-uid", 0, "owner of the root directory when it is created")
	create.Flags().Int64Var(&ownerGID, "owner-gid", 0, "its group")
	create.Flags().StringVar(&perms, "permissions", "", "mode of the root directory when it is created (octal, e.g. 0755); without it a missing root fails the mount")
	ls := &cobra.Command{Use: "ls FS_ID", Short: "List a file system's access points", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			out, err := lf.efsClient().DescribeAccessPoints(cmd.Context(), &efs.DescribeAccessPointsInput{FileSystemId: aws.String(a[0])})
			if err != nil {
				return friendly(err)
			}
			return printAccessPoints(cmd, lf, out.AccessPoints)
		}}
	rm := &cobra.Command{Use: "rm ACCESS_POINT_ID", Short: "Delete an access point", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			_, err := rf.efsClient().DeleteAccessPoint(cmd.Context(), &efs.DeleteAccessPointInput{AccessPointId: aws.String(a[0])})
			return friendly(err)
		}}
	for c, f := range map[*cobra.Command]*userFlags{create: cf, ls: lf, rm: rf} {
		f.register(c)
	}
	cmd.AddCommand(create, ls, rm)
	return cmd
}

func printAccessPoints(cmd *cobra.Command, f *userFlags, aps []types.AccessPointDescription) error {
	if f.json() {
		return printJSON(cmd.OutOrStdout(), aps)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCESS POINT\tFILE SYSTEM\tUSER\tROOT\tSTATE")
	for _, a := range aps {
		user, root := "-", "/"
		if p := a.PosixUser; p != nil {
			user = fmt.Sprintf("%d:%d", aws.ToInt64(p.Uid), aws.ToInt64(p.Gid))
		}
		if r := a.RootDirectory; r != nil && aws.ToString(r.Path) != "" {
			root = aws.ToString(r.Path)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", aws.ToString(a.AccessPointId), aws.ToString(a.FileSystemId), user, root, a.LifeCycleState)
	}
	return tw.Flush()
}
