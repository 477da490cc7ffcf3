//! The `lazare` CLI as a library: build, serve, image, inspect, vm.
