package lifecycle

import (
	"context"

	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/runtime"
)

// HungFix is what to do about a registered apiserver that does not answer.
const HungFix = "restart it: `container system stop` (this stops all your containers), then `container system start`, then `wrapix-builder start` again"

// ensureSystem makes the container system usable: started, answering, and
// with a default kernel. `system start` registers the apiserver before it
// downloads the kernel (SystemStart.swift), so an interrupted first start
// leaves a running system without one, and every `run` then fails with
// "default kernel not configured": the kernel is checked on every start,
// not only after a `system start`.
func (b *Builder) ensureSystem(ctx context.Context) error {
	sys, err := b.CLI.SystemStatus(ctx)
	if err != nil {
		return err
	}
	switch sys.State {
	case runtime.SystemNotResponding:
		// Not `system stop` ourselves: it stops every container of the user.
		return problem.New(problem.Runtime, "the container system service is registered but does not answer", HungFix)
	case runtime.SystemUnregistered:
		b.say("starting the container system service (the first time downloads a Linux kernel of about 570 MB)…")
		startErr := b.CLI.SystemStart(ctx, b.sayKernel)
		if sys, err = b.CLI.SystemStatus(ctx); err != nil {
			return err
		}
		if sys.State != runtime.SystemUp {
			if startErr != nil {
				return startErr
			}
			if sys.State == runtime.SystemNotResponding {
				return problem.New(problem.Runtime, "the container system service does not answer after `container system start`", HungFix)
			}
			return problem.New(problem.Runtime, "the container system service is not running after `container system start`",
				"run `container system start` in Terminal from a logged-in GUI session and read its error")
		}
		if startErr != nil && runtime.KernelInstalled(sys.AppRoot) {
			return startErr
		}
		// Up without a kernel: the download broke off; installed below.
	}
	if runtime.KernelInstalled(sys.AppRoot) {
		return nil
	}
	b.say("the container system has no Linux kernel (its download was interrupted); installing the recommended one (about 570 MB)…")
	if err := b.CLI.KernelInstall(ctx, b.sayKernel); err != nil {
		return err
	}
	b.say("Linux kernel installed")
	return nil
}

func (b *Builder) sayKernel(msg string) { b.say("%s", msg) }
