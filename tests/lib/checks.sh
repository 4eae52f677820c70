# The shell test scripts' pass/fail counter (the Python scripts have tests/lib/harness.py's
# Checks). Source it, call `check NAME COMMAND...` per check, and end with `checks_summary SUITE`,
# whose `SUITE: N passed, M failed` line scripts/test.sh adds up. `passed` and `failed` may also
# be raised directly, for checks counted elsewhere.
passed=0
failed=0

# check NAME COMMAND...: runs COMMAND, counts it, shows its output (indented) only when it fails.
check() {
    # Names no caller uses: COMMAND may read the caller's variables (`$name`, `$out`, ...).
    local _check_name="$1" _check_out
    shift
    _check_out="$(mktemp)"
    if "$@" >"$_check_out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $_check_name"
    else
        failed=$((failed + 1))
        echo "FAIL $_check_name"
        sed 's/^/     | /' "$_check_out"
    fi
    rm -f "$_check_out"
}

# checks_summary SUITE: the closing line; fails when a check failed.
checks_summary() {
    echo "$1: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
