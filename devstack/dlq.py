def run_dlq(args, stack):
    return 0
