"""Binary id,target tasks (toy, seti): the task base, out-of-fold alignment, blend methods, stacking, pseudo-labels."""
