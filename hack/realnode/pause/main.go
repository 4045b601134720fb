// pause is the sandbox ("infra") container of the real node's pods: it holds the pod's namespaces open and
// does nothing else. It sleeps until SIGINT or SIGTERM and reaps any zombie it inherits (it is PID 1 when
// the pod shares one PID namespace). Built static, with no dependencies, so the image is FROM scratch.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("startbench pause 3.10")
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
