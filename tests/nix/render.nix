# Test-only: renders the NixOS-style unit definitions of nix/lib.nix to unit files, the way
# NixOS (nixos/lib/systemd-lib.nix) renders the attributes that ccci uses, so that
# systemd-analyze can verify them without nixpkgs. On a real host NixOS does this rendering.
#
# Differences from NixOS, on purpose: WantedBy= is written to [Install] (NixOS makes the
# .wants symlinks itself), and NixOS's default service PATH (coreutils, findutils, grep, sed,
# systemd) is left out. An attribute this renderer does not know is an error, so a new one in
# nix/lib.nix cannot be dropped silently.
{ services, timers }:

let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    isBool
    isList
    listToAttrs
    map
    toJSON
    ;

  known = [
    "description"
    "after"
    "before"
    "wants"
    "requires"
    "wantedBy"
    "path"
    "environment"
    "restartIfChanged"
    "serviceConfig"
    "unitConfig"
    "timerConfig"
  ];
  checkKnown =
    name: def:
    let
      unknown = builtins.filter (a: !builtins.elem a known) (attrNames def);
    in
    if unknown == [ ] then
      def
    else
      throw "render.nix: ${name} uses ${concatStringsSep ", " unknown}, which this renderer does not know";

  value = v: if isBool v then (if v then "true" else "false") else toString v;
  keyLines =
    attrs:
    concatMap (
      k: map (v: "${k}=${value v}") (if isList attrs.${k} then attrs.${k} else [ attrs.${k} ])
    ) (attrNames attrs);
  listKey = key: xs: if xs == [ ] then [ ] else [ "${key}=${concatStringsSep " " xs}" ];
  section = name: lines: if lines == [ ] then "" else "[${name}]\n${concatStringsSep "\n" lines}\n\n";

  unitSection =
    def:
    (if def ? description then [ "Description=${def.description}" ] else [ ])
    ++ listKey "After" (def.after or [ ])
    ++ listKey "Before" (def.before or [ ])
    ++ listKey "Wants" (def.wants or [ ])
    ++ listKey "Requires" (def.requires or [ ])
    ++ keyLines (def.unitConfig or { });
  installSection = def: listKey "WantedBy" (def.wantedBy or [ ]);

  # NixOS: PATH = the bin directories of `path`, then their sbin directories.
  pathEnv =
    def:
    if def ? path then
      { PATH = concatStringsSep ":" (map (p: "${p}/bin") def.path ++ map (p: "${p}/sbin") def.path); }
    else
      { };
  environmentLines =
    def:
    let
      env = (def.environment or { }) // pathEnv def;
    in
    map (k: "Environment=${toJSON "${k}=${env.${k}}"}") (attrNames env);

  serviceText =
    name: def:
    let
      d = checkKnown name def;
    in
    section "Unit" (unitSection d)
    + section "Service" (
      environmentLines d
      ++ (if (d.restartIfChanged or true) then [ ] else [ "X-RestartIfChanged=false" ])
      ++ keyLines (d.serviceConfig or { })
    )
    + section "Install" (installSection d);

  timerText =
    name: def:
    let
      d = checkKnown name def;
    in
    section "Unit" (unitSection d)
    + section "Timer" (keyLines (d.timerConfig or { }))
    + section "Install" (installSection d);

  render =
    suffix: text: defs:
    listToAttrs (
      map (n: {
        name = "${n}.${suffix}";
        value = text n defs.${n};
      }) (attrNames defs)
    );
in
render "service" serviceText services // render "timer" timerText timers
