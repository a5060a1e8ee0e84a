/// DINO (Caron et al. 2021) with two views: a student (the online network and its prototypes)
/// matches the sharpened, centred output of a teacher, an exponential moving average of the
/// student; no negatives. With teacher probabilities Pt = softmax((gt − c)/τt) and student
/// log-probabilities log Ps = log softmax(gs/τs), L = ½·[H(Pt(a), Ps(b)) + H(Pt(b), Ps(a))],
/// H the cross-entropy averaged over pairs. The centre c follows the mean teacher output (momentum
/// `dino_centre_momentum`); centring stops one prototype from winning, sharpening stops the uniform
/// answer. The student's last layer is `Prototypes` over the L2-normalised projection (the paper's
/// weight-normalised layer); the teacher temperature stays at its starting value (the paper's
/// warm-up to 0.07 counts epochs, which a stream does not have).
///
/// Student and teacher projections are standardised over the batch and L2-normalised
/// (`StandardisedUnit`, the BatchNorm of the paper's ResNet head) before the prototypes.
///
/// Distributed: on the projections of every rank (the standardisation and the centre need the
/// whole batch): every rank computes the same loss and centre, backpropagates its own rows and
/// adds 1/ranks of the prototypes' gradient, so the allreduce sums to one.
final class DINO: JointEmbeddingMethod {
    let teacher: EmbeddingNetwork
    let prototypes: Prototypes
    private(set) var teacherPrototypes: [Float]
    private(set) var centre: [Float]
    let studentTemperature: Float, teacherTemperature: Float
    let centreMomentum: Float, momentum: Float
    /// This step's sum of teacher outputs and their count, for the centre.
    private var pending: (sum: [Float], count: Int)?

    let embedding: Int

    init(online: EmbeddingNetwork, prototypes count: Int, studentTemperature: Float, teacherTemperature: Float,
         centreMomentum: Float, momentum: Float, embedding: Int, rng: inout RandomSource) {
        teacher = online.copy()
        prototypes = Prototypes(count: count, dimension: embedding, name: "dino.prototypes", rng: &rng)
        teacherPrototypes = prototypes.weight.value
        centre = [Float](repeating: 0, count: count)
        self.studentTemperature = studentTemperature
        self.teacherTemperature = teacherTemperature
        self.centreMomentum = centreMomentum
        self.momentum = momentum
        self.embedding = embedding
    }

    var parameters: [Parameter] { [prototypes.weight] }

    /// The teacher's outputs (before centring) for gathered projections.
    private func teacherOutput(_ projections: Tensor) -> Tensor {
        prototypes.scores(StandardisedUnit(projections).unit, values: teacherPrototypes).0
    }

    func step(_ views: ViewPairs, online: EmbeddingNetwork, context: MethodContext) -> MethodStep {
        let qa = views.pair.map { online.forward($0.0) }, qb = views.pair.map { online.forward($0.1) }
        let all = Gathered(context.collective, qa?.embedding, qb?.embedding, origins: views.origins, width: embedding)
        let teachers = Gathered(context.collective, views.pair.map { teacher.embed($0.0) }, views.pair.map { teacher.embed($0.1) },
                                origins: views.origins, width: embedding)
        pending = nil
        guard all.first.batch > 0 else { return .none }
        let ua = StandardisedUnit(all.first), ub = StandardisedUnit(all.second)
        let (sa, ca) = prototypes.scores(ua.unit), (sb, cb) = prototypes.scores(ub.unit)
        let ta = teacherOutput(teachers.first), tb = teacherOutput(teachers.second)
        let pa = softmaxRows(ta, temperature: teacherTemperature, shift: centre)
        let pb = softmaxRows(tb, temperature: teacherTemperature, shift: centre)
        let (lb, gb) = softCrossEntropy(sb, temperature: studentTemperature, targets: pa)
        let (la, ga) = softCrossEntropy(sa, temperature: studentTemperature, targets: pb)
        let prototypeScale = 0.5 / Float(context.ranks)
        let dza = ua.backward(prototypes.backward(ga, ca, scale: prototypeScale).scaled(by: 0.5))
        let dzb = ub.backward(prototypes.backward(gb, cb, scale: prototypeScale).scaled(by: 0.5))
        if let qa, let qb {
            online.backward(all.ownRows(of: dza), record: qa.record)
            online.backward(all.ownRows(of: dzb), record: qb.record)
        }
        var sum = [Float](repeating: 0, count: prototypes.count)
        for t in [ta, tb] { for i in 0..<t.batch { for j in 0..<prototypes.count { sum[j] += t.storage[i * prototypes.count + j] } } }
        pending = (sum, ta.batch + tb.batch)
        let loss = 0.5 * (la + lb)
        var health = ContrastiveHealth.raw(loss: loss, all.first, all.second)
        health.accuracy = Self.agreement(sa, pb) * 0.5 + Self.agreement(sb, pa) * 0.5
        return MethodStep(loss: loss, share: loss / Float(context.ranks), health: health, embeddings: qa?.embedding)
    }

    /// The share of rows whose student and teacher pick the same prototype.
    private static func agreement(_ student: Tensor, _ teacher: [Float]) -> Float {
        let n = student.batch, k = student.itemSize
        var same = 0
        for i in 0..<n {
            let s = student.storage[(i * k)..<((i + 1) * k)], t = teacher[(i * k)..<((i + 1) * k)]
            if s.indices.max(by: { s[$0] < s[$1] }) == t.indices.max(by: { t[$0] < t[$1] }) { same += 1 }
        }
        return Float(same) / Float(max(n, 1))
    }

    func didUpdate(online: EmbeddingNetwork, context: MethodContext) {
        defer { pending = nil }
        teacher.momentumUpdate(from: online, momentum: momentum)
        for i in teacherPrototypes.indices { teacherPrototypes[i] = momentum * teacherPrototypes[i] + (1 - momentum) * prototypes.weight.value[i] }
        // Every rank saw the same gathered teacher outputs: the centres stay the same.
        guard let (sum, count) = pending, count > 0 else { return }
        for j in centre.indices { centre[j] = centreMomentum * centre[j] + (1 - centreMomentum) * sum[j] / Float(count) }
    }

    func save(into file: inout SafeTensors) {
        for p in teacher.parameters { file.set("dino_teacher.\(p.name)", shape: p.shape, values: p.value) }
        file.set("dino.teacher_prototypes", shape: [prototypes.count, prototypes.dimension], values: teacherPrototypes)
        file.set("dino.centre", shape: [prototypes.count], values: centre)
    }

    func restorer(from file: StateReader) throws(Learner.RestoreError) -> () -> Void {
        let values = try file.parameters(teacher.parameters, prefix: "dino_teacher.")
        let (k, d) = (prototypes.count, prototypes.dimension)
        let savedPrototypes = try file.floats("dino.teacher_prototypes", count: k * d, shape: [k, d])
        let savedCentre = try file.floats("dino.centre", count: k, shape: [k])
        return { [self] in
            for (p, v) in values { p.value = v }
            teacherPrototypes = savedPrototypes
            centre = savedCentre
        }
    }
}
