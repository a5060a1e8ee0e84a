import ArgumentParser
import StreamDecode

@main
struct SSLDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssl-daemon",
        abstract: "Learns visual and audio representations from video by self-supervision.",
        version: BuildInfo.version,
        subcommands: [Run.self, Status.self, Inspect.self, Export.self, Embed.self, Probe.self, Bench.self]
    )

    static func main() {
        BLASKernelSelection.reexecIfOpenBLASFellBack()
        main(nil)
    }
}

/// FFmpeg's own stderr chatter; our errors already carry its messages.
struct FFmpegLogOption: ParsableArguments {
    @Option(name: .customLong("ffmpeg-log"), help: "FFmpeg's own log level on stderr.")
    var level: FFmpegLogLevel = .quiet

    func apply() { level.apply() }
}
