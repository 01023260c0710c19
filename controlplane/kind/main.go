// Command kind is the upstream kind CLI, built from the pinned sigs.k8s.io/kind module.
package main

import "sigs.k8s.io/kind/cmd/kind/app"

func main() {
	app.Main()
}
