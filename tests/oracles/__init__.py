"""Independent oracles the tests compare see_cuda with (the benchmark times one of them too)."""
