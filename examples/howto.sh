#!/usr/bin/env bash
# The command list of the classic iptables how-to (../shared/iptables-howto.txt in the
# project's docs), verbatim, with `fwctl` in front. Run it as root in a namespace of its own:
#   ip netns add howto && ip netns exec howto ./examples/howto.sh; ip netns exec howto fwctl down
# Each command's outcome is printed; the summary says how many ran as iptables runs them.
set -u
FWCTL=${FWCTL:-fwctl}
RULES=${RULES_DIR:-$(mktemp -d)}   # the how-to writes /etc/iptables; set RULES_DIR=/etc/iptables for that
ok=0 failed=0

run() {
  local out
  if out=$("$@" 2>&1); then
    ok=$((ok + 1)); printf 'ok      %s\n' "$*"
  else
    failed=$((failed + 1)); printf 'FAILED  %s\n        %s\n' "$*" "$(head -1 <<<"$out")"
  fi
}

# Set default chain policies; accept on localhost; established sessions; SSH.
run $FWCTL iptables -P INPUT DROP
run $FWCTL iptables -P FORWARD DROP
run $FWCTL iptables -A INPUT -i lo -j ACCEPT
run $FWCTL iptables -A OUTPUT -o lo -j ACCEPT
run $FWCTL iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
run $FWCTL iptables -I INPUT -p tcp --dport 22 -j ACCEPT
# NAT for a VPN (the how-to's own line lacks the source network).
run $FWCTL iptables -t nat -A POSTROUTING -s -o eth0 -j MASQUERADE
# TUN/TAP interfaces.
run $FWCTL iptables -A INPUT -i tun+ -j ACCEPT
run $FWCTL iptables -A FORWARD -i tun+ -j ACCEPT
run $FWCTL iptables -A INPUT -i tap+ -j ACCEPT
run $FWCTL iptables -A FORWARD -i tap+ -j ACCEPT
# Mail ports.
run $FWCTL iptables -I INPUT 2 -p tcp --dport 587 -j ACCEPT
run $FWCTL iptables -I INPUT 3 -p tcp --dport 110 -j ACCEPT
run $FWCTL iptables -I INPUT 4 -p tcp --dport 143 -j ACCEPT
run $FWCTL iptables -I INPUT 5 -p tcp --dport 993 -j ACCEPT
run $FWCTL iptables -I INPUT 6 -p tcp --dport 995 -j ACCEPT
# Status.
run $FWCTL iptables -L -n -v
run $FWCTL iptables -n -L -v --line-numbers
run $FWCTL iptables -L INPUT -n -v
run $FWCTL iptables -L OUTPUT -n -v --line-numbers
# Deleting and inserting (the how-to's insert lacks its source address).
run $FWCTL iptables -D INPUT 4
run $FWCTL iptables -L INPUT -n --line-numbers
run $FWCTL iptables -I INPUT 2 -s -j DROP
# Saving and loading.
run sh -c "$FWCTL iptables-save > $RULES/rules.v4"
run sh -c "$FWCTL ip6tables-save > $RULES/rules.v6"
run sh -c "$FWCTL iptables-restore < $RULES/rules.v4"
echo "$ok ran, $failed failed"
