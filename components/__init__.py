"""Pipeline steps: each module is a plain function with a command line; DVC and KFP only wrap them."""
