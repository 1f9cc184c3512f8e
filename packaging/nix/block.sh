# Sourced by the nix-darwin module's activation script (bash, as root); a test
# runs it on temporary files. Shared files (/etc/nix/nix.custom.conf, which
# the Determinate installer creates and the user edits, and /etc/nix/machines)
# get one marked block; every other line stays as it was. No ";" in the
# markers: Nix splits the machines file at ";" before it drops comments.

wrapix_block_begin='# BEGIN wrapix-builder (managed by nix-darwin: services.wrapix-builder, edits inside are replaced)'
wrapix_block_end='# END wrapix-builder'

# wrapix_set_block FILE BODY: set our block in FILE to BODY (replaced in
# place when present, else appended; an empty BODY removes it). Writes only
# when the text changes (atomically, keeping the file's mode and owner) and
# then prints the file's name. A damaged block (a BEGIN without its END, an
# END without its BEGIN, two BEGINs) is an error that leaves FILE as it is:
# guessing where our lines end could delete the administrator's.
# A FILE that is a link (nix-darwin's environment.etc, into /etc/static) is
# left alone: replacing it with a regular file would make nix-darwin's next
# switch abort ("Unexpected files in /etc"). Then it prints the lines to add
# to the configuration and returns 2.
wrapix_set_block() {
	local file=$1 body=$2 tmp
	if [ ! -e "$file" ] && [ ! -L "$file" ] && [ -z "$body" ]; then return 0; fi
	if [ -L "$file" ]; then
		[ -z "$body" ] && return 0
		printf >&2 'wrapix-builder: %s is a link (declared with environment.etc."nix/%s" in your configuration, or made by another tool), so it is left as it is. Add these lines to environment.etc."nix/%s".text:\n%s' \
			"$file" "${file##*/}" "${file##*/}" "$body"
		return 2
	fi
	tmp=$(mktemp "$file.wrapix-XXXXXX") || return 1
	local src=/dev/null
	if [ -e "$file" ]; then
		src=$file
		cp -p "$file" "$tmp" || { rm -f "$tmp"; return 1; } # the mode and owner
	else
		chmod 644 "$tmp"
	fi
	local damage
	if ! damage=$(BEGIN_LINE=$wrapix_block_begin END_LINE=$wrapix_block_end BODY=$body awk '
		function block() { if (ENVIRON["BODY"] != "") printf "%s\n%s%s\n", ENVIRON["BEGIN_LINE"], ENVIRON["BODY"], ENVIRON["END_LINE"] > out }
		BEGIN { out = ARGV[2]; ARGV[2] = "" }
		damage != "" { next }
		$0 == ENVIRON["BEGIN_LINE"] {
			if (done) { damage = "a second BEGIN line at line " NR; next }
			skip = 1; begin = NR; block(); done = 1; next
		}
		skip { if ($0 == ENVIRON["END_LINE"]) skip = 0; next }
		$0 == ENVIRON["END_LINE"] { damage = "an END line without its BEGIN at line " NR; next }
		{ print > out }
		END {
			if (damage == "" && skip) damage = "the BEGIN line at line " begin " has no END line"
			if (damage != "") { print damage; exit 3 }
			if (!done) block()
		}' "$src" "$tmp"); then
		rm -f "$tmp"
		printf >&2 'wrapix-builder: error: %s: our marked block is damaged (%s); nothing was changed. Fix: edit %s so that it holds exactly one "%s" line and one "%s" line after it (or neither), keeping your own lines outside them, then switch again.\n' \
			"$file" "${damage:-awk failed}" "$file" "$wrapix_block_begin" "$wrapix_block_end"
		return 1
	fi
	if [ -e "$file" ] && cmp -s "$file" "$tmp"; then
		rm -f "$tmp"
		return 0
	fi
	mv -f "$tmp" "$file" && echo "$file"
}

# wrapix_foreign_builders FILE: the `builders` lines of FILE outside our
# block (they would make Nix ignore /etc/nix/machines).
wrapix_foreign_builders() {
	[ -f "$1" ] || return 0
	BEGIN_LINE=$wrapix_block_begin END_LINE=$wrapix_block_end awk '
		$0 == ENVIRON["BEGIN_LINE"] { skip = 1; next }
		skip { if ($0 == ENVIRON["END_LINE"]) skip = 0; next }
		/^[ \t]*builders[ \t]*=/ { print FILENAME ":" NR ": " $0 }' "$1"
}
