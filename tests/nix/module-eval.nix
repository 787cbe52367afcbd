# Test-only: evaluates nix/modules/ccci.nix without nixpkgs, against a stub of the few parts of
# nixpkgs' lib it uses. Options are collected, unset ones take their `default` (a missing default
# for an unset option is an error, as in NixOS), and the `mkIf cfg.enable` body is returned.
# This checks the module's wiring: option names and defaults, and the mapping onto nix/lib.nix.
# It does not reproduce NixOS type checking or merging; types are only recorded by name.
{
  values,
  dockerEnable ? true,
}:

let
  inherit (builtins)
    attrNames
    concatStringsSep
    isAttrs
    mapAttrs
    stringLength
    substring
    ;

  isOption = x: isAttrs x && (x._type or null) == "option";
  type = name: args: { inherit name args; };

  stubLib = rec {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption =
      name:
      mkOption {
        type = types.bool;
        default = false;
        description = "Whether to enable ${name}.";
      };
    mkPackageOption =
      pkgs: name: _:
      mkOption {
        type = types.package;
        default = pkgs.${name};
        description = "The ${name} package to use.";
      };
    mkIf = cond: content: {
      _type = "if";
      inherit cond content;
    };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    types = {
      package = type "package" [ ];
      path = type "path" [ ];
      str = type "str" [ ];
      bool = type "bool" [ ];
      ints.positive = type "ints.positive" [ ];
      strMatching = re: type "strMatching" [ re ];
      enum = values: type "enum" values;
      nullOr = t: type "nullOr" [ t ];
      listOf = t: type "listOf" [ t ];
      attrsOf = t: type "attrsOf" [ t ];
      either =
        a: b:
        type "either" [
          a
          b
        ];
    };
    concatLines = lines: concatStringsSep "" (map (l: "${l}\n") lines);
    getExe' = pkg: exe: "${pkg}/bin/${exe}";
    removePrefix =
      prefix: s:
      if substring 0 (stringLength prefix) s == prefix then
        substring (stringLength prefix) (stringLength s - stringLength prefix) s
      else
        s;
  };

  # Store paths stand in for packages; the builders record what they were given.
  pkgs = {
    ccci = "/nix/store/ccci";
    drone-runner-exec = "/nix/store/drone-runner-exec";
    git = "/nix/store/git";
    restic = "/nix/store/restic";
    coreutils = "/nix/store/coreutils";
    pkgsStatic.busybox = "/nix/store/busybox-static";
    stdenv.hostPlatform.system = "x86_64-linux";
    callPackage =
      fn: args:
      let
        f = import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // args);
    writeText = name: text: {
      outPath = "/nix/store/writeText-${name}";
      inherit text;
    };
    writeShellScript = name: text: {
      outPath = "/nix/store/writeShellScript-${name}";
      inherit text;
    };
    runCommand =
      name: env: script:
      (env.passthru or { })
      // {
        outPath = "/nix/store/runCommand-${name}";
        inherit name script;
      };
    buildEnv = args: {
      outPath = "/nix/store/buildEnv-${args.name}";
      inherit args;
    };
    dockerTools.buildImage = args: {
      outPath = "/nix/store/dockerTools-buildImage-${baseNameOf args.name}.tar.gz";
      inherit args;
    };
  };

  resolve =
    prefix: options: given:
    mapAttrs (
      n: o:
      if isOption o then
        if given ? ${n} then
          given.${n}
        else if o ? default then
          o.default
        else
          throw "option ${prefix}.${n} is unset and has no default"
      else
        resolve "${prefix}.${n}" o (given.${n} or { })
    ) options;

  # name -> { type, hasDefault, default text, hasExample, description }, flattened.
  describe =
    prefix: options:
    builtins.foldl' (
      acc: n:
      let
        o = options.${n};
        path = "${prefix}.${n}";
      in
      acc
      // (
        if isOption o then
          {
            ${path} = {
              type = o.type.name;
              typeArgs = map (t: t.name or t) o.type.args;
              hasDefault = o ? default;
              hasExample = o ? example;
              readOnly = o.readOnly or false;
              description = o.description or "";
            };
          }
        else
          describe path o
      )
    ) { } (attrNames options);

  module = import ../../nix/modules/ccci.nix {
    inherit config pkgs;
    lib = stubLib;
  };

  config = {
    services.ccci = resolve "services.ccci" module.options.services.ccci values;
    virtualisation.docker = {
      enable = dockerEnable;
      package = "/nix/store/docker";
    };
    networking.hostName = "ci-host";
  };
in
{
  options = describe "services.ccci" module.options.services.ccci;
  cfg = config.services.ccci // {
    runner = config.services.ccci.runner // {
      pipelineFile = config.services.ccci.runner.pipelineFile.outPath;
    };
  };
  pipelineText = config.services.ccci.runner.pipelineFile.text;
  # What the module builds and loads as the probe image, and the loader unit's script.
  probeImage =
    let
      p = config.services.ccci.probeImage;
      loader = module.config.content.systemd.services.ccci-probe-image.serviceConfig.ExecStart;
    in
    {
      # Not `outPath`: toJSON would print only that.
      path = p.outPath;
      inherit (p) script ref;
      image = p.image.outPath;
      imageArgs = p.image.args // {
        copyToRoot = p.image.args.copyToRoot.args;
      };
      loader = loader.outPath;
      loaderText = loader.text;
    };
  enabled = module.config.cond;
  inherit (module.config.content)
    users
    environment
    systemd
    virtualisation
    ;
  failingAssertions = map (a: a.message) (
    builtins.filter (a: !a.assertion) module.config.content.assertions
  );
}
