import Foundation
import Testing
import TestSupport

@Suite("Labelled clip generator", .timeLimit(.minutes(20)))
struct LabelledSamplesTests {
    @Test("generate_labelled.sh writes decodable clips with video and audio, and a label per clip")
    func generatesDecodableLabelledClips() throws {
        let dir = try makeTemporaryDirectory()
        defer { removeTemporaryDirectory(dir) }
        let script = repositoryRoot.appendingPathComponent("samples/generate_labelled.sh").path
        let generated = try run("/bin/bash", [script, dir.path, "2", "7"])
        #expect(generated.status == 0, "\(generated.stderr)")
        let csv = try String(contentsOf: dir.appendingPathComponent("labels.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
        let labels = Set(rows.map { $0[1] })
        #expect(labels.count >= 4, "classes: \(labels)")
        #expect(rows.count == labels.count * 2)
        let paths = rows.map { dir.appendingPathComponent($0[0]).path }
        let probe = try run(try daemonBinary(), ["probe"] + paths)
        #expect(probe.status == 0, "\(probe.stdout)")
        for line in probe.stdout.split(separator: "\n") {
            let o = try jsonObject(line)
            #expect(o["video"] != nil && o["audio"] != nil, "\(line)")
        }
    }
}
